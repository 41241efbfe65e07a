"""Every message that crosses the bus, defined once.

msgspec Structs encoded as MessagePack (chosen by measurement, see
``bench/bench_codec.py``). Each stream carries exactly one schema (a Struct
or a tagged union of Structs, see :mod:`shared.streams`). Every message has a
schema version ``v`` and the wall-clock nanosecond timestamps of the hops it
passed, so latency can be measured end to end across processes.

Money fields are integer micro-dollars and counts are integer hundredths of a
contract (:mod:`shared.money`); probabilities and fractions are plain floats.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Final

import msgspec

from shared.money import Count, Micros

SCHEMA_VERSION: Final = 1


class Hop(msgspec.Struct, array_like=True, frozen=True):
    """One station a message passed: who, and when (ns since the epoch)."""

    name: str
    ts_ns: int


class Message(msgspec.Struct, kw_only=True, tag_field="type"):
    """Base of every bus message."""

    v: int = SCHEMA_VERSION
    hops: list[Hop] = msgspec.field(default_factory=list)

    def stamp(self, name: str, ts_ns: int | None = None) -> None:
        """Record that this message passed ``name`` now."""
        self.hops.append(Hop(name, time.time_ns() if ts_ns is None else ts_ns))


class Side(StrEnum):
    YES = "yes"
    NO = "no"


class Action(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Level(msgspec.Struct, array_like=True, frozen=True):
    """A price level of bids: price in the side's own leg pricing, resting count."""

    price: Micros
    count: Count


# --- market data (stream "md", sharded by event) -------------------------------------


class BookSnapshot(Message, tag="book_snapshot"):
    """The full book of one market: bids of both sides, each in its own leg price."""

    market: str
    event: str
    yes_bids: list[Level]
    no_bids: list[Level]
    seq: int
    exchange_ts_ns: int = 0


class BookDelta(Message, tag="book_delta"):
    """A signed change of the resting count at one price of one side.

    ``prev_seq`` is the seq of the snapshot or delta of this market that ingest
    published just before: a consumer whose book stands at another seq has
    missed an entry on the bus (a Redis crash, a trimmed stream) and must not
    trust its book. -1: not known (recorded data), not checked.
    """

    market: str
    event: str
    side: Side
    price: Micros
    delta: Count
    seq: int
    exchange_ts_ns: int = 0
    prev_seq: int = -1


class BookState(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    STALE = "stale"


class BookStatus(Message, tag="book_status"):
    """Whether a market's book can be trusted; strategy and risk act only on VALID."""

    market: str
    event: str
    state: BookState
    reason: str = ""


class TopOfBook(Message, tag="top_of_book"):
    """The best bid of each side after a change that moved either (price or size)."""

    market: str
    event: str
    yes_bid: Level | None
    no_bid: Level | None


class Trade(Message, tag="trade"):
    """A trade on the exchange (anyone's): the taker bought ``taker_side``.

    A YES taker lifts NO bids at ``$1 - yes_price``; a NO taker hits YES bids at
    ``yes_price``. Paper makers fill only when trades consume the queue ahead.
    """

    market: str
    event: str
    trade_id: str
    taker_side: Side
    yes_price: Micros
    count: Count
    exchange_ts_ns: int = 0


MarketData = BookSnapshot | BookDelta | BookStatus | TopOfBook | Trade


class MarketDataBatch(Message, tag="md_batch"):
    """Market data of one shard, in the order it happened, carried by one stream entry.

    One entry per batch, not per delta: a Redis round trip per delta would cap
    ingest near 50,000 deltas/s (redis-py spends ~16 us per XADD), while a batch
    holds whatever piled up during the previous publish, so it adds no latency
    when the market is quiet.
    """

    items: list[MarketData]


# --- market metadata (stream "markets") -----------------------------------------------


class PriceRange(msgspec.Struct, array_like=True, frozen=True):
    start: Micros
    end: Micros
    step: Micros


class MarketInfo(Message, tag="market_info"):
    """What discovery learned of a market; enough to price and to arbitrage it."""

    market: str
    event: str
    series: str
    status: str
    close_ts_ns: int
    price_ranges: list[PriceRange]
    mutually_exclusive: bool = False
    strike_type: str = ""
    floor_strike: float | None = None
    cap_strike: float | None = None
    fee_type: str = "quadratic"
    fee_multiplier: str = "1"
    title: str = ""


# --- outside observations (stream "ext") ----------------------------------------------


class WeatherObservation(Message, tag="weather"):
    """NWS: observed running daily maximum and forecast high for a station, in °F tenths."""

    station: str
    local_date: str
    observed_max_tenths_f: int | None
    forecast_high_tenths_f: int | None
    observed_at_ns: int


class FedOdds(Message, tag="fed_odds"):
    """FedWatch-method probabilities of each target-range upper bound (bp) after a meeting."""

    meeting: str
    upper_bound_bp_probs: dict[int, float]
    computed_at_ns: int


class VenueBook(Message, tag="venue_book"):
    """Another venue's book for an outcome mapped to a Kalshi market (YES-side prices)."""

    venue: str
    market: str
    bids: list[Level]
    asks: list[Level]
    taker_fee_rate: float
    observed_at_ns: int


class FeedStatus(Message, tag="feed_status"):
    """A feed's freshness: a feed silent past its limit is STALE."""

    feed: str
    fresh: bool
    last_message_ns: int
    reason: str = ""


Observation = WeatherObservation | FedOdds | VenueBook | FeedStatus


# --- signals (stream "signals", sharded by event) -------------------------------------


class Leg(msgspec.Struct, frozen=True, kw_only=True):
    """One order of a signal or an intent: buy or sell ``count`` of a side at a price."""

    market: str
    side: Side
    action: Action
    price: Micros
    count: Count


class Signal(Message, tag="signal"):
    """What to trade, why, how much, how sure. ``signal_id`` is derived from the inputs.

    ``edge`` is the profit after fees of one set (one contract of every leg) in
    micro-dollars; ``ev`` the expected profit of the whole signal.
    """

    signal_id: str
    strategy: str
    kind: str
    event: str
    legs: list[Leg]
    edge: Micros
    model_p: float
    kelly_fraction: float
    confidence: float
    ev: Micros
    aroc: float
    expires_ns: int
    reasons: list[str] = msgspec.field(default_factory=list)
    score: float = 0.0
    """Rank among signals: ROI x confidence x ln(contracts executable)."""
    close_ts_ns: int = 0


# --- risk and orders ------------------------------------------------------------------


class Route(StrEnum):
    MAKER = "maker"
    SNIPER = "sniper"


class OrderLeg(msgspec.Struct, frozen=True, kw_only=True):
    """An approved order with its idempotent client order id."""

    client_order_id: str
    leg: Leg


class OrderIntent(Message, tag="order_intent"):
    """An approved signal, ready for execution (stream "intents")."""

    intent_id: str
    signal_id: str
    strategy: str
    event: str
    route: Route
    orders: list[OrderLeg]
    kelly_fraction: float
    ev: Micros
    aroc: float
    expires_ns: int


class RiskDecision(Message, tag="risk_decision"):
    """Risk's yes or no to a signal, with its reason code (stream "decisions")."""

    signal_id: str
    approved: bool
    reason: str
    detail: str = ""
    intent_id: str = ""


class OrderStatus(StrEnum):
    SENT = "sent"
    UNKNOWN = "unknown"
    RESTING = "resting"
    PARTIAL = "partial"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


class OrderEvent(Message, tag="order_event"):
    """A change of an order's state (stream "orders")."""

    client_order_id: str
    order_id: str
    market: str
    status: OrderStatus
    leg: Leg
    filled: Count = 0
    remaining: Count = 0
    reason: str = ""
    ts_ns: int = 0


class Fill(Message, tag="fill"):
    """A fill of one of our orders (stream "fills"); ``trade_id`` is unique per fill."""

    trade_id: str
    order_id: str
    client_order_id: str
    market: str
    side: Side
    action: Action
    price: Micros
    count: Count
    fee: Micros
    is_taker: bool
    ts_ns: int
    paper: bool = False


class MarketSettled(Message, tag="settled"):
    """A market we held settled (stream "fills", after its fills): YES or NO won."""

    market: str
    result: Side
    ts_ns: int
    paper: bool = False


LedgerEntry = Fill | MarketSettled


# --- portfolio, heartbeats and control ------------------------------------------------


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class Position(msgspec.Struct, frozen=True, kw_only=True):
    market: str
    yes: Count
    no: Count
    cost: Micros
    mark: Micros | None = None


class PortfolioState(Message, tag="portfolio"):
    """Risk's view of the portfolio, for strategy sizing and the dashboard."""

    cash: Micros
    nav: Micros
    peak_nav: Micros
    daily_pnl: Micros
    drawdown_ppm: int
    trading_state: TradingState
    recovery_mode: bool
    positions: list[Position]
    halted_markets: list[str] = msgspec.field(default_factory=list)
    ts_ns: int = 0


class Heartbeat(Message, tag="heartbeat"):
    """A service instance is alive; ``role`` is active or standby."""

    service: str
    instance: str
    version: str
    role: str
    ts_ns: int
    info: dict[str, str] = msgspec.field(default_factory=dict)


class Command(StrEnum):
    HALT = "halt"
    RESUME = "resume"
    KILL = "kill"
    REDUCE = "reduce"
    SET_MODE = "set_mode"


class ControlCommand(Message, tag="control"):
    """An operator's command; ``market`` empty means the whole system."""

    command_id: str
    command: Command
    actor: str
    reason: str = ""
    market: str = ""
    value: str = ""
    ts_ns: int = 0


class DeadLetter(Message, tag="dead_letter"):
    """A message a consumer could not handle, kept with the reason (stream "dead")."""

    stream: str
    group: str
    message_id: str
    reason: str
    payload: bytes
    failures: int
