"""Deterministic identifiers: the same inputs always give the same id.

A signal's id is a digest of what produced it (strategy, kind, legs, and the
book versions it was computed from), so replaying the same books yields the
same ids and a re-emitted signal is recognised as a duplicate downstream. An
order's ``client_order_id`` is derived from its signal's id and the leg's
position, so a restarted risk or execution service can never mint a second id
for the same order: the exchange refuses a client_order_id it has seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

from shared.messages import Leg

SIGNAL_ID_CHARS: Final = 24
CLIENT_ORDER_ID_CHARS: Final = 32


def _digest(parts: Iterable[str], chars: int) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        hasher.update(part.encode())
        hasher.update(b"\x1f")
    return hasher.hexdigest()[:chars]


def leg_key(leg: Leg) -> str:
    return f"{leg.market}:{leg.side.value}:{leg.action.value}:{leg.price}:{leg.count}"


def signal_id(strategy: str, kind: str, legs: Iterable[Leg], inputs: Iterable[str]) -> str:
    """Id of a signal: its strategy, kind, legs and the versions of the inputs it read.

    ``inputs`` names the data the signal was computed from (e.g. each book's
    sequence number and the model's observation time), so an unchanged book
    gives the same id however often it is scanned.
    """
    return _digest([strategy, kind, *map(leg_key, legs), "|", *inputs], SIGNAL_ID_CHARS)


def client_order_id(signal: str, leg_index: int, attempt: int = 0) -> str:
    """The idempotent exchange id of leg ``leg_index`` of a signal (``attempt``: a repricing)."""
    return _digest([signal, str(leg_index), str(attempt)], CLIENT_ORDER_ID_CHARS)


def intent_id(signal: str) -> str:
    return _digest(["intent", signal], SIGNAL_ID_CHARS)
