"""Pre-trade checks: one signal in, one :class:`Verdict` out.

The checks run in this fixed order and the first that fails decides
(:data:`CHECK_ORDER`); all amounts are micro-dollars, counts hundredths:

1. ``malformed`` -- no legs, a count <= 0, a price outside $0-$1 or off the
   $0.0001 tick.
2. ``duplicate`` -- the signal id was recorded before (quiet: nothing to report).
3. ``expired`` -- ``expires_ns <= now_ns``.
4. ``halted`` / ``reducing_only`` -- the system is HALTED; or REDUCING and a
   leg is not a sell of what is held (less what is already offered for sale).
5. ``market_halted`` -- a leg's market is halted (its book, an operator).
6. ``unknown_market`` -- no MarketInfo for a leg's market.
7. ``market_closed`` -- its status is not open/active, or its close time passed.
8. ``book_not_valid`` -- its book is not known to be VALID.
9. ``feed_stale`` -- the Kalshi connection is not known to be fresh.
10. ``no_mark`` -- no mark for a leg's market; ``no_nav`` -- NAV <= 0.
11. ``kelly_not_positive`` -- the Kelly fraction is not > 0.
12. ``edge_not_positive`` -- the edge is not > 0.
13. ``price_sanity`` -- a buy at or above ``max_buy_price``, a sell at or below
    ``min_sell_price``.
14. ``order_notional`` -- a leg's price x count above ``max_order_notional``.
15. ``open_orders`` -- open orders plus the legs above ``max_open_orders``.
16. ``market_position`` / ``exchange_position_limit`` -- held + open buys + the
    signal's buys of one side of a market above ``max_market_contracts``; of
    both sides above ``exchange_position_limit``; or a sell of more than is
    held and not already offered (Kalshi would open the other side).
17. ``event_exposure``, 18. ``series_exposure``, 19. ``correlated_exposure``
    -- exposure (cost held + open buys, see ``portfolio``) plus the signal's buy
    notionals, above the limit's fraction of NAV.
20. ``self_trade`` -- a leg would cross one of our open orders, or an earlier
    leg of the same signal, in the same market.
21. ``submit_rate`` -- the token bucket lacks one token per leg; tokens are
    taken only here, when everything else passed.

Fail closed: missing data (metadata, book state, feed state, mark, NAV) denies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from shared.ledger import MARK_TICK
from shared.messages import Action, BookState, Leg, RiskDecision, Side, Signal, TradingState
from shared.money import ONE_DOLLAR, Count, Micros, format_count, notional
from shared.risk.limits import RiskLimits, fraction_of
from shared.risk.portfolio import PortfolioView
from shared.risk.reasons import Reason
from shared.risk.trading_state import TradingStateMachine

OPEN_MARKET_STATUSES: Final = frozenset({"active", "open"})
NS_PER_S: Final = 10**9


@dataclass(frozen=True, slots=True)
class Verdict:
    """Risk's answer to one signal; ``quiet`` verdicts need no decision on the bus."""

    approved: bool
    reason: Reason
    detail: str = ""
    quiet: bool = False

    def decision(self, signal_id: str, intent_id: str = "") -> RiskDecision:
        """The ``decisions`` stream message of this verdict."""
        return RiskDecision(
            signal_id=signal_id,
            approved=self.approved,
            reason=self.reason.value,
            detail=self.detail,
            intent_id=intent_id,
        )


APPROVED: Final = Verdict(True, Reason.APPROVED)


def _deny(reason: Reason, detail: str) -> Verdict:
    return Verdict(False, reason, detail)


class TokenBucket:
    """``rate_per_s`` tokens a second up to ``burst``, on the caller's clock (ns); starts full."""

    def __init__(self, rate_per_s: float, burst: int, now_ns: int = 0) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = float(burst)
        self.last_ns = now_ns

    @classmethod
    def from_limits(cls, limits: RiskLimits, now_ns: int = 0) -> TokenBucket:
        return cls(limits.submit_rate_per_s, limits.submit_burst, now_ns)

    def available(self, now_ns: int) -> float:
        """Tokens there now (refills; a clock going back refills nothing)."""
        if now_ns > self.last_ns:
            refill = (now_ns - self.last_ns) * self.rate_per_s / NS_PER_S
            self.tokens = min(float(self.burst), self.tokens + refill)
            self.last_ns = now_ns
        return self.tokens

    def take(self, tokens: int, now_ns: int) -> bool:
        """Take ``tokens`` if all are there; False (and none taken) otherwise."""
        if self.available(now_ns) < tokens:
            return False
        self.tokens -= tokens
        return True


@dataclass(slots=True)
class CheckContext:
    """Everything the checks read. The caller keeps it current and sets ``now_ns``.

    ``books``: the last BookState per market (absent: not valid). ``feed_fresh``:
    the Kalshi connection's freshness. ``seen``: signal id -> its ``expires_ns``,
    changed only by :meth:`record` and :meth:`forget_expired`. ``rate``: taken
    from by :func:`check` when a signal passes everything else.
    """

    portfolio: PortfolioView
    limits: RiskLimits
    trading: TradingStateMachine
    rate: TokenBucket
    now_ns: int = 0
    books: dict[str, BookState] = field(default_factory=dict)
    feed_fresh: bool = False
    seen: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(cls, portfolio: PortfolioView, limits: RiskLimits, now_ns: int = 0) -> CheckContext:
        """A context with a fresh state machine and a full rate bucket."""
        return cls(
            portfolio=portfolio,
            limits=limits,
            trading=TradingStateMachine(limits),
            rate=TokenBucket.from_limits(limits, now_ns),
            now_ns=now_ns,
        )

    def record(self, signal: Signal) -> None:
        """Remember a decided signal, so a redelivery is a quiet DUPLICATE."""
        self.seen[signal.signal_id] = signal.expires_ns

    def forget_expired(self, now_ns: int) -> int:
        """Forget signals expired by ``now_ns`` (they fail EXPIRED anyway); returns how many."""
        expired = [sid for sid, expires in self.seen.items() if expires <= now_ns]
        for sid in expired:
            del self.seen[sid]
        return len(expired)


# --- formatting ----------------------------------------------------------------------------


def usd(amount: Micros) -> str:
    """Micros as dollars for people: ``$2,150.00``, sub-cent digits only when present."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), ONE_DOLLAR)
    digits = f"{frac:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}${whole:,}.{digits}"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _describe(leg: Leg) -> str:
    return (
        f"{leg.action.value} {format_count(leg.count)} {leg.side.value.upper()}"
        f" of {leg.market} @ {usd(leg.price)}"
    )


# --- helpers -------------------------------------------------------------------------------


def _buys(signal: Signal) -> Iterator[Leg]:
    return (leg for leg in signal.legs if leg.action is Action.BUY)


def _totals(signal: Signal, action: Action) -> dict[tuple[str, Side], Count]:
    """The signal's count to ``action`` per (market, side)."""
    totals: dict[tuple[str, Side], Count] = {}
    for leg in signal.legs:
        if leg.action is action:
            key = (leg.market, leg.side)
            totals[key] = totals.get(key, 0) + leg.count
    return totals


def _oversold(signal: Signal, ctx: CheckContext) -> tuple[str, Side, Count, Count] | None:
    """A (market, side, selling, available) the signal sells more of than is free to sell."""
    portfolio = ctx.portfolio
    for (market, side), selling in _totals(signal, Action.SELL).items():
        available = portfolio.held(market, side) - portfolio.open_count(market, side, Action.SELL)
        if selling > available:
            return market, side, selling, available
    return None


def _yes_quote(leg: Leg) -> tuple[bool, Micros]:
    """(whether the leg bids for YES, its price on the YES scale)."""
    bids_yes = (leg.side is Side.YES) == (leg.action is Action.BUY)
    return bids_yes, leg.price if leg.side is Side.YES else ONE_DOLLAR - leg.price


def crosses(a: Leg, b: Leg) -> bool:
    """Whether two orders of one market would trade with each other.

    Buying YES at p meets selling YES at <= p and buying NO at >= $1 - p;
    every leg is put on the YES scale as a bid or an ask and bid >= ask crosses.
    """
    if a.market != b.market:
        return False
    a_bids, a_price = _yes_quote(a)
    b_bids, b_price = _yes_quote(b)
    if a_bids == b_bids:
        return False
    bid, ask = (a_price, b_price) if a_bids else (b_price, a_price)
    return bid >= ask


# --- the checks, in order ------------------------------------------------------------------

Check = Callable[[Signal, CheckContext], Verdict | None]


def _check_malformed(signal: Signal, ctx: CheckContext) -> Verdict | None:
    if not signal.legs:
        return _deny(Reason.MALFORMED, "signal has no legs")
    for leg in signal.legs:
        if leg.count <= 0:
            return _deny(Reason.MALFORMED, f"count {leg.count} is not positive: {leg.market}")
        if not 0 <= leg.price <= ONE_DOLLAR or leg.price % MARK_TICK:
            return _deny(
                Reason.MALFORMED, f"price {leg.price} micros is not a $0.0001 price in $0-$1"
            )
    return None


def _check_duplicate(signal: Signal, ctx: CheckContext) -> Verdict | None:
    if signal.signal_id in ctx.seen:
        return Verdict(False, Reason.DUPLICATE, f"signal {signal.signal_id} seen", quiet=True)
    return None


def _check_expired(signal: Signal, ctx: CheckContext) -> Verdict | None:
    if signal.expires_ns <= ctx.now_ns:
        late_ms = (ctx.now_ns - signal.expires_ns) // 1_000_000
        return _deny(Reason.EXPIRED, f"expired {late_ms} ms ago")
    return None


def _check_trading_state(signal: Signal, ctx: CheckContext) -> Verdict | None:
    state = ctx.trading.system_state
    if state is TradingState.HALTED:
        return _deny(Reason.HALTED, "halted: " + ", ".join(sorted(ctx.trading.reasons)))
    if state is TradingState.REDUCING:
        buys = [leg for leg in signal.legs if leg.action is Action.BUY]
        if buys:
            return _deny(Reason.REDUCING_ONLY, f"reducing only, no buys: {_describe(buys[0])}")
        oversold = _oversold(signal, ctx)
        if oversold is not None:
            market, side, selling, available = oversold
            return _deny(
                Reason.REDUCING_ONLY,
                f"reducing only: sells {format_count(selling)} {side.value.upper()} of {market}"
                f", {format_count(available)} held and not offered",
            )
    return None


def _check_market_halted(signal: Signal, ctx: CheckContext) -> Verdict | None:
    for leg in signal.legs:
        halts = ctx.trading.market_halts(leg.market)
        if halts:
            why = "; ".join(f"{source}: {halt.reason}" for source, halt in sorted(halts.items()))
            return _deny(Reason.MARKET_HALTED, f"{leg.market} halted ({why})")
    return None


def _check_unknown_market(signal: Signal, ctx: CheckContext) -> Verdict | None:
    for leg in signal.legs:
        if leg.market not in ctx.portfolio.markets:
            return _deny(Reason.UNKNOWN_MARKET, f"no metadata for {leg.market}")
    return None


def _check_market_closed(signal: Signal, ctx: CheckContext) -> Verdict | None:
    for leg in signal.legs:
        info = ctx.portfolio.markets[leg.market]
        if info.status not in OPEN_MARKET_STATUSES:
            return _deny(Reason.MARKET_CLOSED, f"{leg.market} is {info.status}")
        if info.close_ts_ns <= ctx.now_ns:
            return _deny(Reason.MARKET_CLOSED, f"{leg.market} closed at {info.close_ts_ns}")
    return None


def _check_book(signal: Signal, ctx: CheckContext) -> Verdict | None:
    for leg in signal.legs:
        state = ctx.books.get(leg.market)
        if state is not BookState.VALID:
            shown = "unknown" if state is None else state.value
            return _deny(Reason.BOOK_NOT_VALID, f"book of {leg.market} is {shown}")
    return None


def _check_feed(signal: Signal, ctx: CheckContext) -> Verdict | None:
    if not ctx.feed_fresh:
        return _deny(Reason.FEED_STALE, "kalshi feed not known to be fresh")
    return None


def _check_mark_and_nav(signal: Signal, ctx: CheckContext) -> Verdict | None:
    for leg in signal.legs:
        if leg.market not in ctx.portfolio.marks:
            return _deny(Reason.NO_MARK, f"no mark for {leg.market}")
    nav = ctx.portfolio.nav()
    if nav <= 0:
        return _deny(Reason.NO_NAV, f"NAV {usd(nav)} is not positive")
    return None


def _check_kelly(signal: Signal, ctx: CheckContext) -> Verdict | None:
    kelly = signal.kelly_fraction
    if not (math.isfinite(kelly) and kelly > 0):
        return _deny(Reason.KELLY_NOT_POSITIVE, f"kelly fraction {kelly!r}")
    return None


def _check_edge(signal: Signal, ctx: CheckContext) -> Verdict | None:
    if signal.edge <= 0:
        return _deny(Reason.EDGE_NOT_POSITIVE, f"edge {usd(signal.edge)}")
    return None


def _check_price_sanity(signal: Signal, ctx: CheckContext) -> Verdict | None:
    limits = ctx.limits
    for leg in signal.legs:
        if leg.action is Action.BUY and leg.price >= limits.max_buy_price:
            return _deny(
                Reason.PRICE_SANITY, f"{_describe(leg)}: buys at >= {usd(limits.max_buy_price)}"
            )
        if leg.action is Action.SELL and leg.price <= limits.min_sell_price:
            return _deny(
                Reason.PRICE_SANITY, f"{_describe(leg)}: sells at <= {usd(limits.min_sell_price)}"
            )
    return None


def _check_order_notional(signal: Signal, ctx: CheckContext) -> Verdict | None:
    limit = ctx.limits.max_order_notional
    for leg in signal.legs:
        amount = notional(leg.price, leg.count)
        if amount > limit:
            return _deny(
                Reason.ORDER_NOTIONAL, f"{_describe(leg)}: notional {usd(amount)} > {usd(limit)}"
            )
    return None


def _check_open_orders(signal: Signal, ctx: CheckContext) -> Verdict | None:
    open_now = len(ctx.portfolio.open_orders)
    limit = ctx.limits.max_open_orders
    if open_now + len(signal.legs) > limit:
        return _deny(
            Reason.OPEN_ORDERS, f"{open_now} open + {len(signal.legs)} legs > {limit} orders"
        )
    return None


def _check_market_position(signal: Signal, ctx: CheckContext) -> Verdict | None:
    portfolio, limits = ctx.portfolio, ctx.limits
    buys = _totals(signal, Action.BUY)
    for (market, side), buying in buys.items():
        total = (
            portfolio.held(market, side) + portfolio.open_count(market, side, Action.BUY) + buying
        )
        if total > limits.max_market_contracts:
            return _deny(
                Reason.MARKET_POSITION,
                f"{market} {side.value.upper()} held + open buys + signal"
                f" {format_count(total)} > {format_count(limits.max_market_contracts)}",
            )
    for market in sorted({market for market, _ in buys}):
        total = sum(
            portfolio.held(market, side)
            + portfolio.open_count(market, side, Action.BUY)
            + buys.get((market, side), 0)
            for side in Side
        )
        if total > limits.exchange_position_limit:
            return _deny(
                Reason.EXCHANGE_POSITION_LIMIT,
                f"{market} YES + NO held + open buys + signal"
                f" {format_count(total)} > {format_count(limits.exchange_position_limit)}",
            )
    oversold = _oversold(signal, ctx)
    if oversold is not None:
        market, side, selling, available = oversold
        return _deny(
            Reason.MARKET_POSITION,
            f"sells {format_count(selling)} {side.value.upper()} of {market}"
            f", {format_count(available)} held and not offered",
        )
    return None


def _exposure_check(
    signal: Signal,
    ctx: CheckContext,
    reason: Reason,
    label: str,
    key: Callable[[str], str],
    current: Callable[[str], Micros],
    fraction: float,
) -> Verdict | None:
    added: dict[str, Micros] = {}
    for leg in _buys(signal):
        name = key(leg.market)
        added[name] = added.get(name, 0) + notional(leg.price, leg.count)
    nav = ctx.portfolio.nav()
    limit = fraction_of(nav, fraction)
    for name, amount in sorted(added.items()):
        total = current(name) + amount
        if total > limit:
            return _deny(
                reason,
                f"{label} {name} exposure {usd(total)} > {_pct(fraction)} of NAV {usd(nav)}",
            )
    return None


def _check_event_exposure(signal: Signal, ctx: CheckContext) -> Verdict | None:
    portfolio = ctx.portfolio
    return _exposure_check(
        signal,
        ctx,
        Reason.EVENT_EXPOSURE,
        "event",
        portfolio.event_of,
        portfolio.event_exposure,
        ctx.limits.max_event_exposure_frac,
    )


def _check_series_exposure(signal: Signal, ctx: CheckContext) -> Verdict | None:
    portfolio = ctx.portfolio
    return _exposure_check(
        signal,
        ctx,
        Reason.SERIES_EXPOSURE,
        "series",
        portfolio.series_of,
        portfolio.series_exposure,
        ctx.limits.max_series_exposure_frac,
    )


def _check_correlated_exposure(signal: Signal, ctx: CheckContext) -> Verdict | None:
    portfolio = ctx.portfolio
    return _exposure_check(
        signal,
        ctx,
        Reason.CORRELATED_EXPOSURE,
        "group",
        portfolio.group_of,
        portfolio.group_exposure,
        ctx.limits.max_correlated_exposure_frac,
    )


def _check_self_trade(signal: Signal, ctx: CheckContext) -> Verdict | None:
    for index, leg in enumerate(signal.legs):
        ours = [*ctx.portfolio.open_orders_in(leg.market), *signal.legs[:index]]
        for other in ours:
            if crosses(leg, other):
                return _deny(Reason.SELF_TRADE, f"{_describe(leg)} crosses our {_describe(other)}")
    return None


def _check_submit_rate(signal: Signal, ctx: CheckContext) -> Verdict | None:
    if not ctx.rate.take(len(signal.legs), ctx.now_ns):
        available = ctx.rate.available(ctx.now_ns)
        return _deny(
            Reason.SUBMIT_RATE, f"{len(signal.legs)} orders, {available:.2f} tokens available"
        )
    return None


CHECKS: Final[tuple[tuple[tuple[Reason, ...], Check], ...]] = (
    ((Reason.MALFORMED,), _check_malformed),
    ((Reason.DUPLICATE,), _check_duplicate),
    ((Reason.EXPIRED,), _check_expired),
    ((Reason.HALTED, Reason.REDUCING_ONLY), _check_trading_state),
    ((Reason.MARKET_HALTED,), _check_market_halted),
    ((Reason.UNKNOWN_MARKET,), _check_unknown_market),
    ((Reason.MARKET_CLOSED,), _check_market_closed),
    ((Reason.BOOK_NOT_VALID,), _check_book),
    ((Reason.FEED_STALE,), _check_feed),
    ((Reason.NO_MARK, Reason.NO_NAV), _check_mark_and_nav),
    ((Reason.KELLY_NOT_POSITIVE,), _check_kelly),
    ((Reason.EDGE_NOT_POSITIVE,), _check_edge),
    ((Reason.PRICE_SANITY,), _check_price_sanity),
    ((Reason.ORDER_NOTIONAL,), _check_order_notional),
    ((Reason.OPEN_ORDERS,), _check_open_orders),
    ((Reason.MARKET_POSITION, Reason.EXCHANGE_POSITION_LIMIT), _check_market_position),
    ((Reason.EVENT_EXPOSURE,), _check_event_exposure),
    ((Reason.SERIES_EXPOSURE,), _check_series_exposure),
    ((Reason.CORRELATED_EXPOSURE,), _check_correlated_exposure),
    ((Reason.SELF_TRADE,), _check_self_trade),
    ((Reason.SUBMIT_RATE,), _check_submit_rate),
)
"""The checks in the order they run, each with the reasons it can deny with."""

CHECK_ORDER: Final[tuple[Reason, ...]] = tuple(r for reasons, _ in CHECKS for r in reasons)
"""Every denial reason, in the order the checks run."""


def check(signal: Signal, ctx: CheckContext) -> Verdict:
    """Run every check in order; the first denial decides, else APPROVED.

    Reads ``ctx`` and takes rate tokens only on approval; it never records the
    signal: call ``ctx.record(signal)`` once the decision is durable.
    """
    for _, step in CHECKS:
        verdict = step(signal, ctx)
        if verdict is not None:
            return verdict
    return APPROVED
