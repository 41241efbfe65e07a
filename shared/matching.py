"""Paper matching against a live order book: takers walk levels, makers wait in a queue.

Pure and deterministic (integer money, no clock, no I/O), so the execution
service's paper venue and the backtester fill orders the same way. Prices are
micro-dollars in the leg's own pricing and counts hundredths of a contract
(:mod:`shared.money`).

**Takers** (:func:`take`, :func:`take_sell`) walk the book level by level up to
the limit price, at the levels' own prices: slippage is what the book shows,
not a fixed allowance. Kalshi publishes bids only, so buying a side takes the
other side's bids (a NO bid at q is a YES ask at $1 - q) and selling a side
hits that side's own bids. The fee of one order is Kalshi's formula
accumulated over every level it takes and rounded up to the cent once
(:mod:`shared.fees`), as :meth:`shared.kelly.AskLadder.cost` prices it.

The book belongs to the feed and is never changed here. Our paper takes do not
reach the exchange, so the feed would keep showing the liquidity we took;
:class:`TakenLiquidity` remembers it, per level, until the exchange sends a
change at that level (or a new snapshot), from which point the book we see is
the exchange's word again.

**Makers** (:class:`MakerQueue`) follow the standard queue-position estimate
for price-level (not per-order) data: Rigtorp's estimator with cancellations
spread uniformly over the queue, which is hftbacktest's ``ProbQueueModel``
with the identity probability function. Its assumptions:

* the exchange matches each price level first in, first out;
* a new paper order joins at the back: everything resting at its price is
  ahead of it, nothing behind;
* our paper order is not on the exchange, so trades and book changes are the
  real market's; a trade at our price fills the queue ahead first, then us
  (what we would have taken from that taker), while the real orders behind us
  lose what the real trade took beyond the queue ahead;
* a trade on our side at a price worse for the taker than ours (a bid below
  ours was hit) swept our level: our whole remaining order fills;
* a decrease of our level that trades seen there do not explain is a
  cancellation, spread evenly over the orders ahead of and behind us: the
  queue ahead shrinks by the cancelled count times its share of the level,
  rounded down (we never move up on a fraction), never below zero;
* an increase of our level is new orders joining behind us;
* a trade arrives before the book decrease it causes (trades not yet matched
  by a decrease are remembered and explain the next decreases).

Paper charges the maker fee per fill event, each rounded up to the cent: the
conservative choice, since the exchange rounds per order and rebates the
excess across an order's fills. Series whose fee type does not charge makers
have a zero maker rate (:func:`shared.fees.maker_rate`) and pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shared.book import OrderBook, SideBids
from shared.fees import FeeRate, fee, fee_numerator, round_up_numerator
from shared.messages import Action, BookDelta, BookSnapshot, Level, MarketData, Side, Trade
from shared.money import ONE_DOLLAR, Count, Micros, ceil_div, notional


def other_side(side: Side) -> Side:
    return Side.NO if side is Side.YES else Side.YES


@dataclass(frozen=True, slots=True)
class TakerResult:
    """What one taker order took: fills at the levels' prices, and its cost.

    ``fills`` are (price paid or received in ``side``'s own pricing, count), in
    the order taken; ``notional`` and ``fee`` are micro-dollars, the fee rounded
    up to the cent once for the whole order. ``book_side`` names the bids the
    order consumed (the other side's for a buy, its own for a sell).
    """

    market: str
    side: Side
    action: Action
    fills: tuple[Level, ...]
    notional: Micros
    fee: Micros
    filled: Count
    remaining: Count

    @property
    def book_side(self) -> Side:
        return other_side(self.side) if self.action is Action.BUY else self.side

    def consumed(self) -> tuple[Level, ...]:
        """The fills as the book's bid levels they came from (``book_side`` pricing)."""
        if self.action is Action.SELL:
            return self.fills
        return tuple(Level(ONE_DOLLAR - fill.price, fill.count) for fill in self.fills)

    @property
    def cash_change(self) -> Micros:
        """Cash after minus cash before: a buy pays notional and fee, a sell receives
        notional less the fee."""
        if self.action is Action.BUY:
            return -(self.notional + self.fee)
        return self.notional - self.fee


class TakenLiquidity:
    """Counts our own paper takes removed from book levels the exchange still shows.

    Keyed by (market, side, bid price) as the book stores its levels. A level is
    forgotten when a change at it arrives (the exchange book moved on, and its
    new size is the truth), a market when a snapshot of it arrives.
    """

    __slots__ = ("_taken",)

    def __init__(self) -> None:
        self._taken: dict[tuple[str, Side, Micros], Count] = {}

    def taken(self, market: str, side: Side, price: Micros) -> Count:
        """Hundredths of a contract taken by our paper orders from one bid level."""
        return self._taken.get((market, side, price), 0)

    def available(self, market: str, side: Side, price: Micros, resting: Count) -> Count:
        """What is left for us of ``resting`` at one bid level."""
        return max(0, resting - self.taken(market, side, price))

    def record(self, result: TakerResult) -> None:
        """Remember what a paper take consumed (call once the fill is booked)."""
        for level in result.consumed():
            key = (result.market, result.book_side, level.price)
            self._taken[key] = self._taken.get(key, 0) + level.count

    def forget_level(self, market: str, side: Side, price: Micros) -> None:
        self._taken.pop((market, side, price), None)

    def forget_market(self, market: str) -> None:
        for key in [key for key in self._taken if key[0] == market]:
            del self._taken[key]

    def on_market_data(self, item: MarketData) -> None:
        """Forget what a book change or snapshot makes obsolete; ignore everything else."""
        if isinstance(item, BookDelta):
            self.forget_level(item.market, item.side, item.price)
        elif isinstance(item, BookSnapshot):
            self.forget_market(item.market)

    def __len__(self) -> int:
        return len(self._taken)


def _check_order(limit_price: Micros, count: Count) -> None:
    if not 0 <= limit_price <= ONE_DOLLAR:
        raise ValueError(f"limit price {limit_price} outside [0, {ONE_DOLLAR}]")
    if count < 0:
        raise ValueError(f"count {count} is negative")


def _bids_from_best(bids: SideBids, lowest: int) -> Iterator[tuple[int, Count]]:
    """(tick, resting count) of the bids at tick ``lowest`` or above, best first."""
    index = bids.best
    while index >= max(lowest, 0):
        yield index, bids.counts[index]
        index = bids.occupied.rfind(1, max(lowest, 0), index)


def _available_levels(
    book: OrderBook, book_side: Side, lowest_bid: Micros, taken: TakenLiquidity | None
) -> Iterator[Level]:
    """Bid levels of ``book_side`` at ``lowest_bid`` or above, less our paper takes."""
    bids = book.bids(book_side)
    for index, resting in _bids_from_best(bids, ceil_div(lowest_bid, bids.unit)):
        price = index * bids.unit
        left = resting if taken is None else taken.available(book.market, book_side, price, resting)
        if left > 0:
            yield Level(price, left)


def _walk(
    levels: Iterator[Level], count: Count, fill_price: Callable[[Micros], Micros]
) -> list[Level]:
    """Take up to ``count`` from ``levels`` in order; fills priced by ``fill_price``."""
    fills: list[Level] = []
    wanted = count
    for level in levels:
        if wanted == 0:
            break
        piece = min(level.count, wanted)
        fills.append(Level(fill_price(level.price), piece))
        wanted -= piece
    return fills


def _result(
    book: OrderBook,
    side: Side,
    action: Action,
    fills: list[Level],
    count: Count,
    rate: FeeRate,
    fill_or_kill: bool,
) -> TakerResult:
    filled = sum(fill.count for fill in fills)
    if fill_or_kill and filled < count:
        fills, filled = [], 0
    fee_num = sum(fee_numerator(fill.price, fill.count, rate) for fill in fills)
    return TakerResult(
        market=book.market,
        side=side,
        action=action,
        fills=tuple(fills),
        notional=sum(notional(fill.price, fill.count) for fill in fills),
        fee=round_up_numerator(fee_num, rate),
        filled=filled,
        remaining=count - filled,
    )


def take(
    book: OrderBook,
    side: Side,
    limit_price: Micros,
    count: Count,
    rate: FeeRate,
    *,
    fill_or_kill: bool,
    taken: TakenLiquidity | None = None,
) -> TakerResult:
    """BUY ``count`` of ``side`` as taker at prices up to ``limit_price`` (IOC or FOK).

    Walks the asks (the other side's bids, complemented) cheapest first. IOC
    takes what is there and leaves the rest unfilled; FOK takes nothing unless
    the whole count is available within the limit. ``taken`` removes what our
    earlier paper takes consumed; the book and ``taken`` are left unchanged.
    """
    _check_order(limit_price, count)
    book_side = other_side(side)
    levels = _available_levels(book, book_side, ONE_DOLLAR - limit_price, taken)
    fills = _walk(levels, count, lambda bid: ONE_DOLLAR - bid)
    return _result(book, side, Action.BUY, fills, count, rate, fill_or_kill)


def take_sell(
    book: OrderBook,
    side: Side,
    limit_price: Micros,
    count: Count,
    rate: FeeRate,
    *,
    fill_or_kill: bool,
    taken: TakenLiquidity | None = None,
) -> TakerResult:
    """SELL ``count`` of a held ``side`` as taker at prices of ``limit_price`` or better.

    Hits ``side``'s own bids at or above the limit, best first; IOC and FOK as
    in :func:`take`. Whether the position is held is the venue's check.
    """
    _check_order(limit_price, count)
    levels = _available_levels(book, side, limit_price, taken)
    fills = _walk(levels, count, lambda bid: bid)
    return _result(book, side, Action.SELL, fills, count, rate, fill_or_kill)


def consumed_bid(trade: Trade) -> Level:
    """The bid price a trade filled (in :func:`consumed_side`'s pricing) and its count.

    A YES taker lifts NO bids at ``$1 - yes_price``; a NO taker hits YES bids at
    ``yes_price``.
    """
    if trade.taker_side is Side.YES:
        return Level(ONE_DOLLAR - trade.yes_price, trade.count)
    return Level(trade.yes_price, trade.count)


def consumed_side(trade: Trade) -> Side:
    """Whose bids a trade filled: the side opposite the taker's."""
    return other_side(trade.taker_side)


class MakerQueue:
    """Our resting paper BUY of ``side`` at ``price`` and its estimated queue position.

    See the module docstring for the model. ``queue_ahead`` and ``queue_behind``
    are the real market's resting counts before and after us at our level.
    """

    __slots__ = (
        "count",
        "fees",
        "filled",
        "market",
        "price",
        "queue_ahead",
        "queue_behind",
        "rate",
        "side",
        "unexplained_trades",
    )

    def __init__(
        self,
        market: str,
        side: Side,
        price: Micros,
        count: Count,
        queue_ahead: Count,
        rate: FeeRate,
    ) -> None:
        if count <= 0 or queue_ahead < 0 or not 0 < price < ONE_DOLLAR:
            raise ValueError(f"bad maker order: {count} at {price}, {queue_ahead} ahead")
        self.market = market
        self.side = side
        self.price = price
        self.count = count
        self.rate = rate
        self.queue_ahead = queue_ahead
        self.queue_behind: Count = 0
        self.filled: Count = 0
        self.fees: Micros = 0
        """Maker fees charged so far, each fill rounded up to the cent on its own."""
        self.unexplained_trades: Count = 0
        """Traded at our level and not yet seen as a decrease of the level."""

    @classmethod
    def join(
        cls, book: OrderBook, side: Side, price: Micros, count: Count, rate: FeeRate
    ) -> MakerQueue:
        """Place at the back of the level: everything resting at ``price`` is ahead."""
        resting = book.bids(side).counts[book.grid.index(price)]
        return cls(book.market, side, price, count, resting, rate)

    @property
    def remaining(self) -> Count:
        return self.count - self.filled

    @property
    def done(self) -> bool:
        return self.filled == self.count

    def at(self, market: str, side: Side, price: Micros) -> bool:
        """Whether a book change at (market, side, price) is at our level."""
        return (market, side, price) == (self.market, self.side, self.price)

    def fee_of(self, count: Count) -> Micros:
        """The maker fee paper charges for one fill of ``count``, rounded up to the cent."""
        return fee(self.price, count, self.rate)

    def on_trade(self, trade: Trade) -> Count:
        """How much of our order this trade fills (hundredths of a contract)."""
        if trade.market != self.market or consumed_side(trade) is not self.side or self.done:
            return 0
        bid = consumed_bid(trade)
        if bid.price > self.price:
            return 0
        if bid.price < self.price:
            return self._fill(self.remaining, through=True)
        from_ahead = min(trade.count, self.queue_ahead)
        self.queue_ahead -= from_ahead
        beyond = trade.count - from_ahead
        self.queue_behind -= min(beyond, self.queue_behind)
        self.unexplained_trades += trade.count
        return self._fill(min(beyond, self.remaining), through=False)

    def _fill(self, count: Count, *, through: bool) -> Count:
        if through:
            self.queue_ahead = self.queue_behind = 0
        self.filled += count
        if count:
            self.fees += self.fee_of(count)
        return count

    def on_delta(self, delta_count: Count) -> None:
        """A signed change of the resting count at our price and side.

        Decreases first use up the trades already seen at our level; the rest is
        cancellation, spread over the queue (module docstring).
        """
        if delta_count >= 0:
            self.queue_behind += delta_count
            return
        decrease = -delta_count
        explained = min(decrease, self.unexplained_trades)
        self.unexplained_trades -= explained
        self._cancel(decrease - explained)

    def _cancel(self, cancelled: Count) -> None:
        level = self.queue_ahead + self.queue_behind
        if level == 0 or cancelled == 0:
            return
        cancelled = min(cancelled, level)
        from_ahead = cancelled * self.queue_ahead // level
        self.queue_ahead -= from_ahead
        self.queue_behind -= cancelled - from_ahead

    def resync(self, level_count: Count) -> None:
        """Align with the level's size from a fresh snapshot; we never move back."""
        self.queue_ahead = min(self.queue_ahead, level_count)
        self.queue_behind = level_count - self.queue_ahead
        self.unexplained_trades = 0
