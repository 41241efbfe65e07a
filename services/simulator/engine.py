"""The matching engine: price-time priority, one book per market, pure and clock-injected.

Every change is recorded as an :data:`~services.simulator.model.ExchangeEvent`
in an outbox the server drains after each call (:meth:`Exchange.drain`); the
engine itself does no I/O, so tests drive it directly with a fake clock.

Kalshi rules implemented here: limit orders only, on each market's price
grid, in hundredths of a contract where the market allows fractions; time in
force GTC (with optional expiration), IOC and FOK; post-only cancelled when
it would cross; self-trade prevention ``taker_at_cross`` (cancel the incoming
order, keep its fills) and ``maker`` (cancel the resting order, go on
matching); amend keeps queue priority only for a pure size decrease; decrease
always keeps it. Fees per :mod:`shared.fees`, accumulated per order so an
order's total is the formula rounded up to the cent once.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from services.simulator.accounts import Account, Ledger
from services.simulator.book import BookLeg, OrderBook
from services.simulator.model import (
    BookDelta,
    BookSide,
    Event,
    ExchangeEvent,
    Fill,
    Lifecycle,
    Market,
    MarketStatus,
    Order,
    OrderStatus,
    OrderUpdate,
    PositionUpdate,
    SelfTradePrevention,
    Series,
    TimeInForce,
    Trade,
    on_grid,
)
from shared import fees
from shared.money import COUNT_PER_CONTRACT, ONE_DOLLAR, Count, Micros, notional

TRADES_KEPT = 100_000
WORST_FEE_PRICE = ONE_DOLLAR // 2
"""P(1 - P) peaks at $0.50: reserving the fee there covers any fill price."""


class OrderError(Exception):
    """A request the exchange refuses: HTTP status, Kalshi error code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class OrderRequest:
    ticker: str
    book_side: BookSide
    yes_price: Micros
    count: Count
    time_in_force: TimeInForce = TimeInForce.GTC
    stp: SelfTradePrevention = SelfTradePrevention.TAKER_AT_CROSS
    client_order_id: str = ""
    post_only: bool = False
    reduce_only: bool = False
    expiration_ms: int | None = None
    legacy_side: str = ""
    legacy_action: str = ""


@dataclass(slots=True)
class _MarketState:
    market: Market
    book: OrderBook
    taker_rate: fees.FeeRate
    maker_rate: fees.FeeRate


class Exchange:
    """Markets, books, accounts and the rules that tie them together."""

    def __init__(self, clock_ms: Callable[[], int], seed: int = 0) -> None:
        self.clock_ms = clock_ms
        self._ids = random.Random(seed)
        self.series: dict[str, Series] = {}
        self.events: dict[str, Event] = {}
        self.markets: dict[str, Market] = {}
        self._state: dict[str, _MarketState] = {}
        self.ledger = Ledger()
        self.orders: dict[str, Order] = {}
        self._resting: dict[tuple[str, str], dict[str, Order]] = {}
        self._expiries: list[tuple[int, str]] = []
        self._outbox: list[ExchangeEvent] = []
        self.trades: deque[Trade] = deque(maxlen=TRADES_KEPT)

    # --- set-up ---------------------------------------------------------------------

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def add_series(self, series: Series) -> None:
        fees.taker_rate(series.fee_type, series.fee_multiplier)  # validates
        self.series[series.ticker] = series

    def add_event(self, event: Event) -> None:
        self.events[event.event_ticker] = event

    def add_market(self, market: Market) -> None:
        series = self.series[market.series_ticker]
        self.markets[market.ticker] = market
        self._state[market.ticker] = _MarketState(
            market,
            OrderBook(market.ticker),
            fees.taker_rate(series.fee_type, series.fee_multiplier),
            fees.maker_rate(series.fee_type, series.fee_multiplier),
        )
        event = self.events[market.event_ticker]
        if market.ticker not in event.markets:
            event.markets.append(market.ticker)
        self._emit(Lifecycle(market.ticker, "created", self.clock_ms()))

    def open_account(
        self, key_id: str, cash: Micros, user_id: str | None = None, keep_history: bool = True
    ) -> Account:
        return self.ledger.open(key_id, user_id or self.new_id(), cash, keep_history)

    def book(self, ticker: str) -> OrderBook:
        return self._market_state(ticker).book

    def drain(self) -> list[ExchangeEvent]:
        out, self._outbox = self._outbox, []
        return out

    # --- order entry ----------------------------------------------------------------

    def place(self, key_id: str, request: OrderRequest) -> Order:
        self.expire_due()
        account = self._account(key_id)
        state = self._market_state(request.ticker)
        self._validate(account, state.market, request)
        count = self._reduce_only_cap(account, request) if request.reduce_only else request.count
        now = self.clock_ms()
        order = Order(
            order_id=self.new_id(),
            account=key_id,
            client_order_id=request.client_order_id,
            ticker=request.ticker,
            book_side=request.book_side,
            yes_price=request.yes_price,
            initial_count=count,
            time_in_force=request.time_in_force,
            stp=request.stp,
            created_ms=now,
            post_only=request.post_only,
            reduce_only=request.reduce_only,
            expiration_ms=request.expiration_ms,
            legacy_side=request.legacy_side,
            legacy_action=request.legacy_action,
            remaining=count,
            updated_ms=now,
        )
        self._reserve(account, state, order)
        self.orders[order.order_id] = order
        account.orders[order.order_id] = order
        if order.client_order_id:
            account.by_client_id[order.client_order_id] = order.order_id
        self._execute(account, state, order)
        return order

    def cancel(self, key_id: str, order_id: str) -> tuple[Order, Count]:
        """Cancel a resting order; return it and the count taken off the book."""
        self.expire_due()
        order = self._own_order(key_id, order_id)
        self._require_active(self.markets[order.ticker])
        if order.status is not OrderStatus.RESTING:
            raise OrderError(404, "not_found", "order is not resting")
        reduced = order.remaining
        self._cancel_resting(order, "canceled")
        return order, reduced

    def decrease(
        self, key_id: str, order_id: str, reduce_by: Count | None, reduce_to: Count | None
    ) -> Order:
        self.expire_due()
        order = self._own_order(key_id, order_id)
        self._require_active(self.markets[order.ticker])
        if order.status is not OrderStatus.RESTING:
            raise OrderError(404, "not_found", "order is not resting")
        if (reduce_by is None) == (reduce_to is None):
            raise OrderError(400, "invalid_parameters", "give exactly one of reduce_by, reduce_to")
        target = order.remaining - reduce_by if reduce_by is not None else reduce_to
        if target is None or target < 0 or target >= order.remaining:
            raise OrderError(400, "invalid_parameters", "a decrease must lower the count")
        if target == 0:
            self._cancel_resting(order, "canceled")
        else:
            self._shrink(order, order.remaining - target)
        return order

    def amend(
        self,
        key_id: str,
        order_id: str,
        yes_price: Micros,
        count: Count,
        updated_client_order_id: str = "",
    ) -> tuple[Order, Order]:
        """Change price and/or total count; return (before, after).

        ``count`` is the new total including what already filled. Only a pure
        decrease keeps the order's place in the queue.
        """
        self.expire_due()
        order = self._own_order(key_id, order_id)
        state = self._market_state(order.ticker)
        self._require_active(state.market)
        if order.status is not OrderStatus.RESTING:
            raise OrderError(404, "not_found", "order is not resting")
        self._check_price_and_count(state.market, yes_price, count)
        new_remaining = count - order.filled
        if new_remaining <= 0:
            raise OrderError(400, "invalid_order_size", "count must exceed what already filled")
        before = replace(order)
        account = self._account(key_id)
        if updated_client_order_id:
            account.by_client_id.pop(order.client_order_id, None)
            order.client_order_id = updated_client_order_id
            account.by_client_id[updated_client_order_id] = order.order_id
        if yes_price == order.yes_price and new_remaining <= order.remaining:
            if new_remaining < order.remaining:
                self._shrink(order, order.remaining - new_remaining)
            return before, order
        self._requeue(
            account, state, order, yes_price=yes_price, count=count, new_remaining=new_remaining
        )
        return before, order

    def queue_position(self, key_id: str, order_id: str) -> Count:
        order = self._own_order(key_id, order_id)
        if order.status is not OrderStatus.RESTING:
            return 0
        leg = self.book(order.ticker).leg(order.book_side.leg)
        return leg.ahead_of(order.leg_price, order.order_id)

    def rest_without_matching(
        self, key_id: str, ticker: str, leg: str, price: Micros, count: Count
    ) -> Order:
        """Put liquidity on the book as recorded (replay); never matches."""
        side = BookSide.BID if leg == "yes" else BookSide.ASK
        yes_price = price if side is BookSide.BID else ONE_DOLLAR - price
        now = self.clock_ms()
        order = Order(
            order_id=self.new_id(),
            account=key_id,
            client_order_id="",
            ticker=ticker,
            book_side=side,
            yes_price=yes_price,
            initial_count=count,
            time_in_force=TimeInForce.GTC,
            stp=SelfTradePrevention.MAKER,
            created_ms=now,
            remaining=count,
            updated_ms=now,
        )
        self.orders[order.order_id] = order
        self._account(key_id).orders[order.order_id] = order
        self._rest(self._market_state(ticker), order)
        return order

    # --- market lifecycle -----------------------------------------------------------

    def close_market(self, ticker: str) -> None:
        market = self.markets[ticker]
        self._cancel_all(ticker)
        market.status = MarketStatus.CLOSED
        self._emit(Lifecycle(ticker, "deactivated", self.clock_ms()))

    def settle(self, ticker: str, result: str) -> None:
        """Determine a market and pay $1 per winning contract; positions close."""
        if result not in ("yes", "no"):
            raise ValueError(f"result must be yes or no, got {result!r}")
        market = self.markets[ticker]
        self._cancel_all(ticker)
        now = self.clock_ms()
        market.status = MarketStatus.DETERMINED
        market.result = result
        self._emit(Lifecycle(ticker, "determined", now, result))
        for account in self.ledger.accounts.values():
            held = account.positions.get(ticker)
            record = account.settle(ticker, market.event_ticker, result, now)
            if held is not None and record is not None:
                self._emit(
                    PositionUpdate(
                        account.key_id,
                        ticker,
                        position=0,
                        cost=0,
                        realized_pnl=held.realized_pnl + record.revenue - held.cost,
                        fees_paid=held.fees_paid,
                        fee_cost=0,
                        volume=held.volume,
                        ts_ms=now,
                    )
                )
        market.open_interest = 0
        market.status = MarketStatus.FINALIZED
        market.settled_ms = now
        self._emit(Lifecycle(ticker, "settled", now, result))

    def expire_due(self) -> None:
        now = self.clock_ms()
        while self._expiries and self._expiries[0][0] <= now:
            _, order_id = heapq.heappop(self._expiries)
            order = self.orders.get(order_id)
            if order is not None and order.status is OrderStatus.RESTING:
                self._cancel_resting(order, "expired")

    # --- validation -----------------------------------------------------------------

    def _validate(self, account: Account, market: Market, request: OrderRequest) -> None:
        self._require_active(market)
        self._check_price_and_count(market, request.yes_price, request.count)
        if request.client_order_id and request.client_order_id in account.by_client_id:
            raise OrderError(409, "order_already_exists", "client_order_id already used")
        if request.expiration_ms is not None:
            if request.time_in_force is not TimeInForce.GTC:
                raise OrderError(400, "invalid_order", "expiration only with good_till_canceled")
            if request.expiration_ms <= self.clock_ms():
                raise OrderError(400, "invalid_order", "Expiration timestamp must be in the future")

    def _check_price_and_count(self, market: Market, yes_price: Micros, count: Count) -> None:
        if not on_grid(yes_price, market.price_ranges):
            raise OrderError(400, "invalid_order", "price is not on the market's price grid")
        if count <= 0 or (not market.fractional and count % COUNT_PER_CONTRACT):
            raise OrderError(400, "invalid_order_size", "invalid order count")

    @staticmethod
    def _require_active(market: Market) -> None:
        if market.status is not MarketStatus.ACTIVE:
            raise OrderError(400, "market_inactive", "market is not open for trading")

    def _reduce_only_cap(self, account: Account, request: OrderRequest) -> Count:
        holding = account.holding(request.ticker)
        against = -holding if request.book_side is BookSide.BID else holding
        claimed = self._claimed(account.key_id, request.ticker, request.book_side)
        allowed = max(0, against - claimed)
        if allowed == 0:
            raise OrderError(400, "invalid_order", "reduce_only order would not reduce a position")
        return min(request.count, allowed)

    # --- cash reservation -----------------------------------------------------------

    def _claimed(self, key_id: str, ticker: str, side: BookSide, exclude: str = "") -> Count:
        resting = self._resting.get((key_id, ticker), {})
        return sum(
            o.remaining for o in resting.values() if o.book_side is side and o.order_id != exclude
        )

    def _reservation(
        self, account: Account, state: _MarketState, order: Order, exclude: str = ""
    ) -> Micros:
        holding = account.holding(order.ticker)
        against = -holding if order.book_side is BookSide.BID else holding
        claimed = self._claimed(account.key_id, order.ticker, order.book_side, exclude)
        closable = max(0, against - claimed)
        opening = max(0, order.remaining - closable)
        worst_fee = fees.fee(WORST_FEE_PRICE, order.remaining, state.taker_rate)
        return notional(order.leg_price, opening) + worst_fee

    def _reserve(self, account: Account, state: _MarketState, order: Order) -> None:
        need = self._reservation(account, state, order)
        if need > account.available + order.reserved:
            raise OrderError(400, "available_balance_too_low", "balance too low for this order")
        account.reserved += need - order.reserved
        order.reserved = order.reserved_initial = need

    def _release(self, order: Order) -> None:
        """Shrink the reservation in step with what is left of the order."""
        keep = 0
        if order.status is OrderStatus.RESTING and order.initial_count:
            keep = order.reserved_initial * order.remaining // max(order.initial_count, 1)
        keep = min(keep, order.reserved)
        self.ledger[order.account].reserved -= order.reserved - keep
        order.reserved = keep

    # --- matching -------------------------------------------------------------------

    def _execute(self, account: Account, state: _MarketState, order: Order) -> None:
        book = state.book
        opposite = book.leg(order.book_side.opposite.leg)
        threshold = ONE_DOLLAR - order.leg_price
        if order.post_only and _crosses(opposite, threshold):
            self._finish(order, "post_only_cross")
            return
        if order.time_in_force is TimeInForce.FOK and (
            self._fillable(opposite, threshold, order) < order.remaining
        ):
            self._finish(order, "fill_or_kill_unfilled")
            return
        self._match(account, state, opposite, threshold, order)
        if order.status is not OrderStatus.RESTING:
            return
        if order.remaining == 0:
            self._finish(order, "")
        elif order.time_in_force is TimeInForce.GTC:
            self._rest(state, order)
        else:
            self._finish(order, "immediate_or_cancel")

    def _fillable(self, opposite: BookLeg, threshold: Micros, order: Order) -> Count:
        total = 0
        for price, level in opposite.best_first():
            if price < threshold:
                break
            for maker in level.values():
                if maker.account == order.account:
                    if order.stp is SelfTradePrevention.TAKER_AT_CROSS:
                        return total
                    continue
                total += maker.remaining
                if total >= order.remaining:
                    return total
        return total

    def _match(
        self,
        account: Account,
        state: _MarketState,
        opposite: BookLeg,
        threshold: Micros,
        order: Order,
    ) -> None:
        while order.remaining > 0:
            best = opposite.best()
            if best is None or best < threshold:
                return
            maker = next(iter(opposite.levels[best].values()))
            if maker.account == order.account:
                if order.stp is SelfTradePrevention.TAKER_AT_CROSS:
                    self._finish(order, "self_trade")
                    return
                self._cancel_resting(maker, "self_trade")
                continue
            if not self._trade(account, state, order, maker, best):
                return

    def _trade(
        self, taker_acct: Account, state: _MarketState, taker: Order, maker: Order, level: Micros
    ) -> bool:
        """Fill taker against maker; False if the taker cannot pay (it is then cancelled)."""
        qty = min(taker.remaining, maker.remaining)
        price = maker.yes_price
        maker_acct = self.ledger[maker.account]
        taker_fee, taker_num = _fee_step(taker, price, qty, state.taker_rate, taker=True)
        maker_fee, maker_num = _fee_step(maker, price, qty, state.maker_rate, taker=False)
        if maker_acct.fill_cost(state.market.ticker, maker.book_side, price, qty) + maker_fee > (
            maker_acct.available + maker.reserved
        ):
            self._cancel_resting(maker, "insufficient_balance")
            return True
        if taker_acct.fill_cost(state.market.ticker, taker.book_side, price, qty) + taker_fee > (
            taker_acct.available + taker.reserved
        ):
            self._finish(taker, "insufficient_balance")
            return False
        now = self.clock_ms()
        oi_before = _long(taker_acct, state.market.ticker) + _long(maker_acct, state.market.ticker)
        taker_acct.apply_fill(
            state.market.ticker, taker.book_side, price, qty, fee=taker_fee, now_ms=now
        )
        maker_acct.apply_fill(
            state.market.ticker, maker.book_side, price, qty, fee=maker_fee, now_ms=now
        )
        oi_after = _long(taker_acct, state.market.ticker) + _long(maker_acct, state.market.ticker)
        self.ledger.fees_collected += taker_fee + maker_fee
        taker.taker_fee_numerator, taker.taker_fees = taker_num, taker.taker_fees + taker_fee
        maker.maker_fee_numerator, maker.maker_fees = maker_num, maker.maker_fees + maker_fee
        taker.taker_fill_cost += notional(taker.leg_price_at(price), qty)
        maker.maker_fill_cost += notional(maker.leg_price_at(price), qty)
        self._fill_order(taker, qty, now)
        state.book.leg(maker.book_side.leg).reduce(level, qty)
        self._fill_order(maker, qty, now)
        self._emit(
            BookDelta(
                state.market.ticker,
                maker.book_side.leg,
                level,
                -qty,
                now,
                maker.account,
                maker.client_order_id,
            )
        )
        if maker.remaining == 0:
            self._unrest(maker)
            maker.status = OrderStatus.EXECUTED
        self._release(maker)
        self._release(taker)
        if maker.status is OrderStatus.EXECUTED:
            self._retire(maker)
        market = state.market
        market.volume += qty
        market.last_price = price
        market.open_interest += oi_after - oi_before
        trade = Trade(self.new_id(), market.ticker, price, qty, taker.book_side, now)
        self.trades.append(trade)
        self._emit(trade)
        for order, acct, fee, is_taker in (
            (taker, taker_acct, taker_fee, True),
            (maker, maker_acct, maker_fee, False),
        ):
            fill = Fill(
                trade_id=trade.trade_id,
                account=acct.key_id,
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                ticker=market.ticker,
                book_side=order.book_side,
                side=order.side,
                action=order.action,
                yes_price=price,
                count=qty,
                fee=fee,
                is_taker=is_taker,
                post_position=acct.holding(market.ticker),
                ts_ms=now,
            )
            if acct.keep_history:
                acct.fills.append(fill)
            self._emit(fill)
            self._emit_position(acct, market.ticker, now)
        self._emit(OrderUpdate(maker.account, maker))
        return True

    def _emit_position(self, account: Account, ticker: str, now: int) -> None:
        pos = account.position(ticker)
        self._emit(
            PositionUpdate(
                account.key_id,
                ticker,
                position=pos.position,
                cost=pos.cost,
                realized_pnl=pos.realized_pnl,
                fees_paid=pos.fees_paid,
                fee_cost=pos.fee_cost,
                volume=pos.volume,
                ts_ms=now,
            )
        )

    @staticmethod
    def _fill_order(order: Order, qty: Count, now: int) -> None:
        order.remaining -= qty
        order.filled += qty
        order.updated_ms = now

    # --- book maintenance -----------------------------------------------------------

    def _rest(self, state: _MarketState, order: Order) -> None:
        state.book.leg(order.book_side.leg).add(order.leg_price, order)
        self._resting.setdefault((order.account, order.ticker), {})[order.order_id] = order
        if order.expiration_ms is not None:
            heapq.heappush(self._expiries, (order.expiration_ms, order.order_id))
        self._emit(
            BookDelta(
                order.ticker,
                order.book_side.leg,
                order.leg_price,
                order.remaining,
                self.clock_ms(),
                order.account,
                order.client_order_id,
            )
        )
        self._emit(OrderUpdate(order.account, order))

    def _unrest(self, order: Order) -> None:
        self.book(order.ticker).leg(order.book_side.leg).remove(order.leg_price, order)
        resting = self._resting.get((order.account, order.ticker))
        if resting is not None:
            resting.pop(order.order_id, None)

    def _shrink(self, order: Order, by: Count) -> None:
        self.book(order.ticker).leg(order.book_side.leg).reduce(order.leg_price, by)
        order.remaining -= by
        order.updated_ms = self.clock_ms()
        self._release(order)
        self._emit(
            BookDelta(
                order.ticker,
                order.book_side.leg,
                order.leg_price,
                -by,
                order.updated_ms,
                order.account,
                order.client_order_id,
            )
        )
        self._emit(OrderUpdate(order.account, order))

    def _cancel_resting(self, order: Order, reason: str) -> None:
        removed = order.remaining
        self._unrest(order)
        order.remaining = 0
        order.status = OrderStatus.CANCELED
        order.cancel_reason = reason
        order.updated_ms = self.clock_ms()
        self._release(order)
        self._emit(
            BookDelta(
                order.ticker,
                order.book_side.leg,
                order.leg_price,
                -removed,
                order.updated_ms,
                order.account,
                order.client_order_id,
            )
        )
        self._emit(OrderUpdate(order.account, order))
        self._retire(order)

    def _finish(self, order: Order, reason: str) -> None:
        """End an order that is not on the book: executed if filled, else cancelled."""
        order.remaining = 0
        order.status = OrderStatus.EXECUTED if not reason else OrderStatus.CANCELED
        order.cancel_reason = reason
        order.updated_ms = self.clock_ms()
        self._release(order)
        self._emit(OrderUpdate(order.account, order))
        self._retire(order)

    def _retire(self, order: Order) -> None:
        """Forget a finished order of an account that keeps no history."""
        account = self.ledger[order.account]
        if account.keep_history:
            return
        self.orders.pop(order.order_id, None)
        account.orders.pop(order.order_id, None)
        if order.client_order_id:
            account.by_client_id.pop(order.client_order_id, None)

    def _requeue(
        self,
        account: Account,
        state: _MarketState,
        order: Order,
        *,
        yes_price: Micros,
        count: Count,
        new_remaining: Count,
    ) -> None:
        trial = replace(order, yes_price=yes_price, remaining=new_remaining)
        need = self._reservation(account, state, trial, exclude=order.order_id)
        if need > account.available + order.reserved:
            raise OrderError(400, "available_balance_too_low", "balance too low for this order")
        self._unrest(order)
        self._emit(
            BookDelta(
                order.ticker,
                order.book_side.leg,
                order.leg_price,
                -order.remaining,
                self.clock_ms(),
                order.account,
                order.client_order_id,
            )
        )
        account.reserved += need - order.reserved
        order.yes_price = yes_price
        order.remaining = new_remaining
        order.initial_count = count
        order.reserved = need
        order.reserved_initial = need * count // new_remaining
        order.updated_ms = self.clock_ms()
        self._execute(account, state, order)

    def _cancel_all(self, ticker: str) -> None:
        for (_, market), resting in list(self._resting.items()):
            if market == ticker:
                for order in list(resting.values()):
                    self._cancel_resting(order, "market_closed")

    # --- lookups --------------------------------------------------------------------

    def _account(self, key_id: str) -> Account:
        if key_id not in self.ledger:
            raise OrderError(401, "unauthorized", "unknown account")
        return self.ledger[key_id]

    def _market_state(self, ticker: str) -> _MarketState:
        state = self._state.get(ticker)
        if state is None:
            raise OrderError(404, "not_found", f"market {ticker} not found")
        return state

    def _own_order(self, key_id: str, order_id: str) -> Order:
        order = self._account(key_id).orders.get(order_id)
        if order is None:
            raise OrderError(404, "not_found", "order not found")
        return order

    def _emit(self, event: ExchangeEvent) -> None:
        self._outbox.append(event)


def _crosses(opposite: BookLeg, threshold: Micros) -> bool:
    best = opposite.best()
    return best is not None and best >= threshold


def _long(account: Account, ticker: str) -> Count:
    return max(0, account.holding(ticker))


def _fee_step(
    order: Order, price: Micros, qty: Count, rate: fees.FeeRate, *, taker: bool
) -> tuple[Micros, int]:
    """This fill's fee and the order's new accumulated numerator (rounded once per order)."""
    if rate.is_zero:
        return 0, order.taker_fee_numerator if taker else order.maker_fee_numerator
    before = order.taker_fee_numerator if taker else order.maker_fee_numerator
    charged = order.taker_fees if taker else order.maker_fees
    after = before + fees.fee_numerator(price, qty, rate)
    return fees.round_up_numerator(after, rate) - charged, after
