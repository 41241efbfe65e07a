"""WebSocket fan-out: every browser gets the live messages, and a slow one only snapshots.

Each client has a bounded queue. Publishing never waits: when a client's queue
is full it is marked slow, its queue is emptied, and from then on it receives
only the latest snapshot (portfolio and status) once a second until it has
drained, so a slow browser never slows the bus or the other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, Final

QUEUE_SIZE: Final = 1_000


@dataclass(eq=False)
class Client:
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE)
    )
    slow: bool = False
    dropped: int = 0


class Hub:
    def __init__(self) -> None:
        self.clients: set[Client] = set()

    def join(self) -> Client:
        client = Client()
        self.clients.add(client)
        return client

    def leave(self, client: Client) -> None:
        self.clients.discard(client)

    def publish(self, kind: str, data: Any) -> None:
        message = {"type": kind, "data": data}
        for client in self.clients:
            if client.slow:
                client.dropped += 1
                continue
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                self._slow_down(client)

    def snapshot(self, data: dict[str, Any]) -> None:
        """Once a second: slow clients get the state instead of the stream."""
        for client in self.clients:
            if not client.slow:
                continue
            if client.queue.empty():
                client.slow = False  # drained: back to the stream, starting from this state
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait({"type": "snapshot", "data": data})

    @staticmethod
    def _slow_down(client: Client) -> None:
        client.slow = True
        while not client.queue.empty():
            client.queue.get_nowait()
            client.dropped += 1
