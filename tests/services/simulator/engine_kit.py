"""A small exchange for engine tests: one series, one event, a few markets, a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.simulator.engine import Exchange, OrderRequest
from services.simulator.model import (
    BookSide,
    Event,
    Market,
    SelfTradePrevention,
    Series,
    TimeInForce,
)
from shared.money import cents, contracts, dollars


@dataclass
class FakeClock:
    now: int = 1_750_000_000_000
    ticks: list[int] = field(default_factory=list)

    def __call__(self) -> int:
        return self.now


def make_exchange(
    *,
    fee_type: str = "quadratic",
    structure: str = "linear_cent",
    fractional: bool = True,
    accounts: tuple[str, ...] = ("alice", "bob", "carol"),
    cash: int = dollars(10_000),
) -> tuple[Exchange, FakeClock]:
    clock = FakeClock()
    exchange = Exchange(clock, seed=1)
    exchange.add_series(Series("KXTEST", "Test", "Testing", fee_type=fee_type))
    exchange.add_event(Event("KXTEST-26JAN01", "KXTEST", "Test event", "", True))
    for name in ("KXTEST-26JAN01-A", "KXTEST-26JAN01-B"):
        exchange.add_market(
            Market(
                ticker=name,
                event_ticker="KXTEST-26JAN01",
                series_ticker="KXTEST",
                market_id=exchange.new_id(),
                title=name,
                yes_sub_title=name,
                no_sub_title=name,
                open_ms=clock.now - 1000,
                close_ms=clock.now + 86_400_000,
                expected_expiration_ms=clock.now + 90_000_000,
                rules_primary="test",
                price_level_structure=structure,
                fractional=fractional,
            )
        )
    for account in accounts:
        exchange.open_account(account, cash)
    exchange.drain()
    return exchange, clock


MARKET = "KXTEST-26JAN01-A"


def order(
    side: str,
    price_cents: float,
    count: float,
    *,
    tif: TimeInForce = TimeInForce.GTC,
    stp: SelfTradePrevention = SelfTradePrevention.TAKER_AT_CROSS,
    post_only: bool = False,
    ticker: str = MARKET,
    **extra: object,
) -> OrderRequest:
    return OrderRequest(
        ticker=ticker,
        book_side=BookSide(side),
        yes_price=round(price_cents * 10_000),
        count=round(count * 100),
        time_in_force=tif,
        stp=stp,
        post_only=post_only,
        **extra,  # type: ignore[arg-type]
    )


__all__ = ["MARKET", "FakeClock", "cents", "contracts", "make_exchange", "order"]
