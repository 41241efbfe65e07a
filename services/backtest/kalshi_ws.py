"""Recorded Kalshi WebSocket messages (JSON lines) as a replayable recording.

A line is ``{"ts_ms": <int>, "msg": <message>}`` (the message and when it was
received, as the simulator's replay scenario reads them) or a bare message,
whose time is its own ``msg.ts_ms``, else the previous line's. Messages are
decoded by the real client's :func:`shared.kalshi.models.decode_ws` and become
what ingest would have published:

* ``orderbook_snapshot`` / ``orderbook_delta`` go through ingest's
  :class:`~services.ingest.books.BookKeeper`, so a sequence gap makes books
  INVALID exactly as live. Prices are converted as ``BookFeed`` does: levels
  of side ``no`` are NO-leg prices (Kalshi's default), or with
  ``no_price="yes"`` on the YES scale and flipped to $1 - p.
* ``trade`` becomes a :class:`~shared.messages.Trade` through ingest's
  :func:`~services.ingest.trades.to_trade`, each ``trade_id`` once.
* ``market_lifecycle_v2`` ``settled`` or ``determined`` with result yes/no
  settles the market once (a paper :class:`~shared.messages.MarketSettled`).
  Any lifecycle message's ``close_ts``, ``price_ranges`` and
  ``additional_metadata`` (event ticker, strike type, floor, cap, title)
  complete the catalog guessed from tickers.
* ``subscribed`` to the orderbook channel with a sid already seen means a new
  connection (sids start again at 1): every book is invalid until its next
  snapshot, as ingest has it after a reconnect.
* Every other message (``ticker``, ``ok``, ``fill``, types unknown to the
  client...) is skipped and counted in :class:`ReadStats`.

Time never goes backwards: a line earlier than the one before it is stamped
with that line's time. A market-data message before any time at all stops the
read. Several files are parts of one connection's recording (sids and ``seq``
run on across them) and are merged by time; recordings of separate
connections cannot be merged, their sids collide.

An undecodable line (not JSON, a message that does not fit its type, a price
or count that does not parse, a malformed trade) stops the read with
``RecordingError("path:line: why")``, or with ``strict=False`` is skipped and
counted. The markets are ``metadata`` when given (messages of other markets
are ignored, as ingest ignores markets it does not follow, and counted), else
guessed from every ticker seen (:mod:`services.backtest.tickers`) and
completed by the lifecycle messages. The files are read twice: once up front
for the markets and the tick count (an upper bound), then lazily as the
replay consumes the ticks.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal, TypeAlias

import msgspec

from services.backtest.inputs import (
    DAY_NS,
    NS_PER_MS,
    NS_PER_SECOND,
    Stamped,
    count_instants,
    group_ticks,
    merge_by_time,
    recording_name,
)
from services.backtest.recording import Recording, RecordingError, Tick
from services.backtest.tickers import PriceUnits, markets_from_tickers, split_ticker
from services.ingest.books import BookKeeper, MarketRef
from services.ingest.catalog import grid_of
from services.ingest.market_data import CHANNEL as BOOK_CHANNEL
from services.ingest.trades import to_trade
from shared.book import PriceGrid
from shared.kalshi import models as km
from shared.messages import Level, MarketData, MarketInfo, MarketSettled, PriceRange, Side, Trade
from shared.money import ONE_DOLLAR, Count, Micros, parse_count, parse_dollars
from shared.risk.portfolio import series_from_ticker

NoPrice: TypeAlias = Literal["no", "yes"]
_RESULTS: Final = {"yes": Side.YES, "no": Side.NO}
_SETTLING: Final = frozenset({"settled", "determined"})


@dataclass(slots=True)
class ReadStats:
    """What a read met, line by line (the up-front pass)."""

    lines: int = 0
    """Lines that were not blank."""
    used: int = 0
    """Order book, trade, lifecycle and orderbook ``subscribed`` messages."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Other messages, by type."""
    junk: int = 0
    """Undecodable lines skipped (``strict=False``)."""
    restamped: int = 0
    """Lines earlier than the line before them, stamped with its time."""
    unfollowed: int = 0
    """Messages of markets the metadata does not list (ignored)."""


# --- one line, normalized -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Snapshot:
    sid: int
    seq: int
    market: str
    yes: list[Level]
    no: list[Level]


@dataclass(frozen=True, slots=True)
class _Delta:
    sid: int
    seq: int
    market: str
    side: Side
    price: Micros
    delta: Count
    exchange_ts_ns: int


@dataclass(frozen=True, slots=True)
class _Lifecycle:
    market: str
    facts: dict[str, Any]
    """MarketInfo fields this message tells."""
    result: Side | None


@dataclass(frozen=True, slots=True)
class _Subscribed:
    sid: int


_Event: TypeAlias = _Snapshot | _Delta | Trade | _Lifecycle | _Subscribed


@dataclass(frozen=True, slots=True)
class _Line:
    ts_ns: int
    event: _Event
    where: str


class _Wrapper(msgspec.Struct):
    type: str | None = None
    ts_ms: int | None = None
    msg: msgspec.Raw = msgspec.Raw()


_wrapper_decoder: Final = msgspec.json.Decoder(_Wrapper)
_TIMED: Final = (km.OrderbookDelta, km.Ticker, km.Trade, km.FillMessage)


def _decode_line(raw: bytes) -> tuple[int | None, km.DecodedWs]:
    """One line: its time in ms if it tells one, and the message, decoded by the client."""
    try:
        wrapper = _wrapper_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        return None, km.MalformedMessage(raw=raw, error=str(exc))
    if wrapper.type is None and len(wrapper.msg):
        message = km.decode_ws(bytes(wrapper.msg))
        return (wrapper.ts_ms if wrapper.ts_ms is not None else _own_ms(message)), message
    message = km.decode_ws(raw)
    return _own_ms(message), message


def _own_ms(message: km.DecodedWs) -> int | None:
    return message.msg.ts_ms if isinstance(message, _TIMED) else None


def _kind(message: km.KnownWsMessage | km.UnknownMessage) -> str:
    if isinstance(message, km.UnknownMessage):
        return message.type
    return str(message.__struct_config__.tag)


def _normalize(message: km.KnownWsMessage | km.UnknownMessage, flip_no: bool) -> _Event | None:
    """What replay needs of a message, None if nothing; ValueError if its values are bad."""
    if isinstance(message, km.OrderbookSnapshot):
        snap = message.msg
        yes = _levels(snap.yes_dollars_fp, flip=False)
        no = _levels(snap.no_dollars_fp, flip=flip_no)
        return _Snapshot(message.sid, message.seq, _ticker(snap.market_ticker), yes, no)
    if isinstance(message, km.OrderbookDelta):
        msg = message.msg
        price = _price(msg.price_dollars, flip=flip_no and msg.side == "no")
        delta, ts_ns = _count(msg.delta_fp), (msg.ts_ms or 0) * NS_PER_MS
        market = _ticker(msg.market_ticker)
        return _Delta(message.sid, message.seq, market, Side(msg.side), price, delta, ts_ns)
    if isinstance(message, km.Trade):
        return to_trade(message.msg, event="")
    if isinstance(message, km.MarketLifecycle):
        return _lifecycle(message.msg)
    if isinstance(message, km.Subscribed) and message.msg.channel == BOOK_CHANNEL:
        return _Subscribed(message.msg.sid)
    return None


def _ticker(text: str) -> str:
    if not text:
        raise ValueError("no market_ticker")
    return text


@functools.lru_cache(maxsize=1 << 16)
def _dollars(text: str) -> Micros:
    """Wire prices repeat endlessly: each text is parsed once (as ingest's BookFeed does)."""
    return parse_dollars(text)


@functools.lru_cache(maxsize=1 << 16)
def _count(text: str) -> Count:
    return parse_count(text)


def _price(text: str, *, flip: bool) -> Micros:
    price = _dollars(text)
    return ONE_DOLLAR - price if flip else price


def _levels(wire: list[km.Level] | None, *, flip: bool) -> list[Level]:
    return [Level(_price(price, flip=flip), _count(count)) for price, count in wire or ()]


def _lifecycle(msg: km.MarketLifecycleMsg) -> _Lifecycle:
    result = _RESULTS.get(msg.result or "") if msg.event_type in _SETTLING else None
    return _Lifecycle(_ticker(msg.market_ticker), _facts(msg), result)


def _facts(msg: km.MarketLifecycleMsg) -> dict[str, Any]:
    extra = msg.additional_metadata or {}
    facts: dict[str, Any] = {}
    event = extra.get("event_ticker")
    if isinstance(event, str) and event:
        facts |= {"event": event, "series": series_from_ticker(event)}
    for name in ("strike_type", "title"):
        if isinstance(extra.get(name), str):
            facts[name] = extra[name]
    for name in ("floor_strike", "cap_strike"):
        value = extra.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            facts[name] = float(value)
    if msg.close_ts:
        facts["close_ts_ns"] = msg.close_ts * NS_PER_SECOND
    if msg.price_ranges:
        ranges = [
            PriceRange(parse_dollars(r.start), parse_dollars(r.end), parse_dollars(r.step))
            for r in msg.price_ranges
        ]
        PriceGrid.from_ranges(ranges)  # ValueError when they make no grid
        facts["price_ranges"] = ranges
    return facts


def _market_of(event: _Event) -> str | None:
    return None if isinstance(event, _Subscribed) else event.market


# --- one file -----------------------------------------------------------------------------


class _File:
    """The lines of one file that replay uses, stamped in time order."""

    def __init__(self, path: Path, flip_no: bool, strict: bool, stats: ReadStats) -> None:
        self.path = path
        self.flip_no = flip_no
        self.strict = strict
        self.stats = stats
        self.last_ns: int | None = None

    def lines(self) -> Iterator[_Line]:
        try:
            with self.path.open("rb") as file:
                yield from self._lines(file)
        except OSError as exc:
            raise RecordingError(f"{self.path}: {exc.strerror or exc}") from exc

    def _lines(self, file: IO[bytes]) -> Iterator[_Line]:
        untimed: list[_Event] = []  # subscriptions before any time take the next line's
        for number, raw in enumerate(file, start=1):
            if not raw.strip():
                continue
            self.stats.lines += 1
            where = f"{self.path}:{number}"
            ms, message = _decode_line(raw)
            if isinstance(message, km.MalformedMessage):
                self._junk(where, f"undecodable: {message.error}")
                continue
            ts_ns = self._stamp(ms)
            event = self._event(message, where)
            if event is None:
                continue
            if ts_ns is None:
                if not isinstance(event, _Subscribed):
                    raise RecordingError(f"{where}: {_kind(message)} before any time (no ts_ms)")
                untimed.append(event)
                continue
            yield from (_Line(ts_ns, early, where) for early in untimed)
            untimed.clear()
            yield _Line(ts_ns, event, where)

    def _stamp(self, ms: int | None) -> int | None:
        if ms is not None:
            ts_ns = ms * NS_PER_MS
            if self.last_ns is not None and ts_ns < self.last_ns:
                self.stats.restamped += 1
            else:
                self.last_ns = ts_ns
        return self.last_ns

    def _event(self, message: km.KnownWsMessage | km.UnknownMessage, where: str) -> _Event | None:
        try:
            event = _normalize(message, self.flip_no)
        except ValueError as exc:  # MoneyFormatError, TradeError, a bad grid
            self._junk(where, f"{_kind(message)}: {exc}")
            return None
        if event is None:
            kind = _kind(message)
            self.stats.skipped[kind] = self.stats.skipped.get(kind, 0) + 1
        else:
            self.stats.used += 1
        return event

    def _junk(self, where: str, why: str) -> None:
        if self.strict:
            raise RecordingError(f"{where}: {why}")
        self.stats.junk += 1


# --- the reader ---------------------------------------------------------------------------


class KalshiWsReader:
    """Reads recorded Kalshi WebSocket files; ``stats`` tells what the read met."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        no_price: NoPrice = "no",
        metadata: list[MarketInfo] | None = None,
        strict: bool = True,
    ) -> None:
        if no_price not in ("no", "yes"):
            raise ValueError(f"no_price must be 'no' or 'yes', not {no_price!r}")
        self.paths = list(paths)
        self.flip_no = no_price == "yes"
        self.metadata = metadata
        self.strict = strict
        self.stats = ReadStats()

    def read(self) -> Recording:
        """Checks the files, learns the markets, and returns the recording (ticks lazily)."""
        name = recording_name(self.paths)
        known = None if self.metadata is None else {info.market for info in self.metadata}
        survey = _survey(self._merged(self.stats), known, self.stats)
        markets = self._markets(survey)
        return Recording(name, markets, self._ticks(markets), size=survey.ticks)

    def _merged(self, stats: ReadStats) -> Iterator[_Line]:
        files = (_File(path, self.flip_no, self.strict, stats).lines() for path in self.paths)
        return merge_by_time(files, lambda line: line.ts_ns)

    def _markets(self, survey: _Survey) -> list[MarketInfo]:
        if self.metadata is not None:
            return sorted(self.metadata, key=lambda info: info.market)
        fallback_close_ns = (survey.last_ns or 0) + DAY_NS
        guessed = markets_from_tickers(survey.tickers, fallback_close_ns=fallback_close_ns)
        told = [
            msgspec.structs.replace(info, **survey.facts.get(info.market, {})) for info in guessed
        ]
        return survey.units.fit(told)

    def _ticks(self, markets: list[MarketInfo]) -> Iterator[Tick]:
        replay = _Replay(markets)
        yield from group_ticks(replay.apply(line) for line in self._merged(ReadStats()))


def read_kalshi_ws(
    paths: Sequence[Path],
    *,
    no_price: NoPrice = "no",
    metadata: list[MarketInfo] | None = None,
    strict: bool = True,
) -> Recording:
    """Recorded Kalshi WebSocket files as one recording (see the module docstring)."""
    return KalshiWsReader(paths, no_price=no_price, metadata=metadata, strict=strict).read()


# --- first pass: the markets and the tick count -------------------------------------------


@dataclass(slots=True)
class _Survey:
    tickers: set[str] = field(default_factory=set)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    units: PriceUnits = field(default_factory=PriceUnits)
    last_ns: int | None = None
    ticks: int = 0


def _survey(lines: Iterable[_Line], known: set[str] | None, stats: ReadStats) -> _Survey:
    survey = _Survey()
    book_sids: set[int] = set()

    def times() -> Iterator[int]:
        for line in lines:
            event = line.event
            market = _market_of(event)
            if market is not None:
                _note_market(survey, line, market, known, stats)
            survey.last_ns = line.ts_ns
            if _may_publish(event, book_sids):
                yield line.ts_ns

    survey.ticks = count_instants(times())
    return survey


def _may_publish(event: _Event, book_sids: set[int]) -> bool:
    """Whether replaying the event can publish anything (for the tick count)."""
    if isinstance(event, _Snapshot | _Delta):
        book_sids.add(event.sid)
    if isinstance(event, _Subscribed):
        seen = event.sid in book_sids
        book_sids.add(event.sid)
        return seen
    return not isinstance(event, _Lifecycle) or event.result is not None


def _note_market(
    survey: _Survey, line: _Line, market: str, known: set[str] | None, stats: ReadStats
) -> None:
    if known is not None and market not in known:
        stats.unfollowed += 1
    elif known is None and market not in survey.tickers:
        try:
            split_ticker(market)
        except RecordingError as exc:
            raise RecordingError(f"{line.where}: {exc}") from None
    survey.tickers.add(market)
    event = line.event
    if isinstance(event, _Snapshot):
        for level in event.yes + event.no:
            survey.units.note(market, level.price)
    elif isinstance(event, _Delta):
        survey.units.note(market, event.price)
    elif isinstance(event, _Lifecycle):
        survey.facts.setdefault(market, {}).update(event.facts)


# --- second pass: what ingest would have published ----------------------------------------


class _Replay:
    def __init__(self, markets: list[MarketInfo]) -> None:
        self.keeper = BookKeeper()
        self.events: dict[str, str] = {}
        for info in markets:
            self.keeper.track(MarketRef(info.market, info.event, grid_of(info)))
            self.events[info.market] = info.event
        self.book_sids: set[int] = set()
        self.trade_ids: set[str] = set()
        self.settled: set[str] = set()

    def apply(self, line: _Line) -> Stamped:
        event, ts_ns = line.event, line.ts_ns
        if isinstance(event, _Lifecycle):
            return ts_ns, [], self._settle(event, ts_ns)
        return ts_ns, self._market_data(event), []

    def _market_data(self, event: _Event) -> list[MarketData]:
        if isinstance(event, _Snapshot):
            self.book_sids.add(event.sid)
            return self.keeper.on_snapshot(event.sid, event.seq, event.market, event.yes, event.no)
        if isinstance(event, _Delta):
            self.book_sids.add(event.sid)
            return self.keeper.on_delta(
                event.sid,
                event.seq,
                event.market,
                event.side,
                event.price,
                event.delta,
                event.exchange_ts_ns,
            )
        if isinstance(event, Trade):
            return self._trade(event)
        if isinstance(event, _Subscribed):
            return self._subscribed(event.sid)
        return []

    def _trade(self, trade: Trade) -> list[MarketData]:
        event = self.events.get(trade.market)
        if event is None or trade.trade_id in self.trade_ids:
            return []
        self.trade_ids.add(trade.trade_id)
        return [msgspec.structs.replace(trade, event=event)]

    def _subscribed(self, sid: int) -> list[MarketData]:
        if sid not in self.book_sids:
            self.book_sids.add(sid)
            return []
        self.book_sids = {sid}
        return self.keeper.on_connection_lost(f"connection lost: sid {sid} subscribed again")

    def _settle(self, event: _Lifecycle, ts_ns: int) -> list[MarketSettled]:
        if event.result is None or event.market not in self.events or event.market in self.settled:
            return []
        self.settled.add(event.market)
        return [MarketSettled(market=event.market, result=event.result, ts_ns=ts_ns, paper=True)]
