"""Fed feed: FOMC outcome odds from 30-day Fed funds futures quotes, every few minutes.

The quotes come from a file or an HTTP endpoint (``feeds.fed.source``); the
FedWatch arithmetic is :mod:`shared.fedwatch`. One ``FedOdds`` per upcoming
meeting is published each round (``meeting`` = the decision day, ISO), and
freshness as ``FeedStatus`` of feed ``fed``.

Quote formats (ours):

* JSON (file ``*.json`` or the HTTP answer)::

    {"as_of": "2026-08-20", "effr": 4.33, "target_upper_bp": 450,
     "zq": {"2026-08": 95.67, "2026-09": "95.7450"}}

  ``zq`` maps contract months to ZQ prices (numbers or strings); every other
  key is optional (``as_of`` defaults to today UTC, ``effr`` and
  ``target_upper_bp`` to ``feeds.fed.effr_pct`` / ``current_upper_bp``).
* CSV (file ``*.csv``): two columns ``key,value`` (a header row is allowed);
  keys ``YYYY-MM`` are ZQ prices, and ``as_of``, ``effr``, ``target_upper_bp``
  are the optional fields above.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import structlog

from services.ingest.feeds import FeedWatch
from shared.backoff import Backoff
from shared.bus.publisher import Publisher
from shared.fedwatch import FedWatchError, Month, fedwatch
from shared.feeds_config import FedSettings
from shared.messages import FedOdds
from shared.runtime import run_until_stopped
from shared.streams import OBSERVATIONS

log = structlog.get_logger("ingest.fed")

FEED = "fed"
RESERVED_KEYS = frozenset({"as_of", "effr", "target_upper_bp", "key"})


class QuoteFormatError(ValueError):
    """A quotes document we cannot read."""


@dataclass(frozen=True, slots=True)
class FedQuotes:
    zq: dict[Month, float]
    as_of: date | None = None
    effr: float | None = None
    target_upper_bp: int | None = None


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise QuoteFormatError(f"{what} {value!r} is not a number")
    try:
        return float(value)
    except ValueError as exc:
        raise QuoteFormatError(f"{what} {value!r} is not a number") from exc


def _optional_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    try:
        if raw.get("as_of"):
            fields["as_of"] = date.fromisoformat(str(raw["as_of"])[:10])
    except ValueError as exc:
        raise QuoteFormatError(f"as_of {raw['as_of']!r} is not a date") from exc
    if raw.get("effr") not in (None, ""):
        fields["effr"] = _number(raw["effr"], "effr")
    if raw.get("target_upper_bp") not in (None, ""):
        fields["target_upper_bp"] = round(_number(raw["target_upper_bp"], "target_upper_bp"))
    return fields


def _zq(prices: Mapping[str, Any]) -> dict[Month, float]:
    try:
        return {Month.parse(m): _number(p, f"ZQ {m}") for m, p in prices.items()}
    except FedWatchError as exc:
        raise QuoteFormatError(str(exc)) from exc


def parse_quotes_json(document: object) -> FedQuotes:
    if not isinstance(document, Mapping) or not isinstance(document.get("zq"), Mapping):
        raise QuoteFormatError("quotes JSON needs an object with a 'zq' object")
    return FedQuotes(zq=_zq(document["zq"]), **_optional_fields(document))


def parse_quotes_csv(text: str) -> FedQuotes:
    rows = [row for row in csv.reader(io.StringIO(text)) if row and row[0].strip()]
    if any(len(row) < 2 for row in rows):
        raise QuoteFormatError("quotes CSV rows need two columns: key,value")
    pairs = {row[0].strip(): row[1].strip() for row in rows}
    prices = {k: v for k, v in pairs.items() if k not in RESERVED_KEYS}
    return FedQuotes(zq=_zq(prices), **_optional_fields(pairs))


def odds_messages(
    quotes: FedQuotes, settings: FedSettings, today: date, computed_at_ns: int
) -> list[FedOdds]:
    """The FedOdds of every upcoming meeting the quotes reach."""
    upper = quotes.target_upper_bp or settings.current_upper_bp
    if upper is None:
        raise QuoteFormatError("no target_upper_bp in the quotes nor feeds.fed.current_upper_bp")
    meetings = fedwatch(
        settings.meetings,
        quotes.zq,
        upper,
        as_of=quotes.as_of or today,
        effr=quotes.effr if quotes.effr is not None else settings.effr_pct,
        late_days=settings.late_days,
    )
    return [
        FedOdds(
            meeting=m.meeting.isoformat(),
            upper_bound_bp_probs=m.upper_bound_bp_probs,
            computed_at_ns=computed_at_ns,
        )
        for m in meetings
    ]


class FedPoller:
    def __init__(
        self,
        settings: FedSettings,
        publisher: Publisher,
        *,
        client: httpx.AsyncClient | None = None,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self._owns_client = client is None
        self.client = client or httpx.AsyncClient(
            timeout=settings.timeout_s, headers=settings.headers, follow_redirects=True
        )
        self.today = today
        self.watch = FeedWatch(
            publisher, FEED, stale_after_s=settings.stale_after_s, heartbeat_s=settings.heartbeat_s
        )

    async def load_quotes(self) -> FedQuotes:
        if self.settings.source == "http":
            assert self.settings.url is not None  # checked by FedSettings
            response = await self.client.get(self.settings.url)
            response.raise_for_status()
            return parse_quotes_json(response.json())
        assert self.settings.path is not None
        text = await asyncio.to_thread(self.settings.path.read_text)
        if self.settings.path.suffix.lower() == ".csv":
            return parse_quotes_csv(text)
        return parse_quotes_json(json.loads(text))

    async def poll_once(self) -> list[FedOdds]:
        quotes = await self.load_quotes()
        messages = odds_messages(quotes, self.settings, self.today(), time.time_ns())
        if messages:
            await self.publisher.publish_many(OBSERVATIONS, messages)
        await self.watch.beat()
        return messages

    async def _loop(self) -> None:
        delay = Backoff(self.settings.retry.base_s, self.settings.retry.cap_s)
        while True:
            try:
                await self.poll_once()
                delay.reset()
                wait_s = self.settings.poll_interval_s
            except (httpx.HTTPError, OSError, ValueError) as exc:
                wait_s = min(delay.next(), self.settings.poll_interval_s)
                log.warning("fed quotes failed", error=str(exc), retry_s=wait_s)
            await asyncio.sleep(wait_s)

    def info(self) -> dict[str, str]:
        return {FEED: self.watch.label}

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await run_until_stopped(stop, self._loop(), self.watch.watch())
        finally:
            if self._owns_client:
                await self.client.aclose()
