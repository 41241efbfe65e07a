"""The replay harness on hand-built data: an arbitrage found, approved, filled and settled.

Three mutually exclusive markets each offer YES at 30 cents (NO bids at 70),
10 contracts deep. Buying one set of all three costs 90 cents plus fees and
pays $1 whatever happens: the strategy must signal it, risk approve it, the
paper venue fill it, and the settlement pay it. Every figure is worked by hand.
"""

from __future__ import annotations

from pathlib import Path

from services.backtest import report as reports
from services.backtest.recording import Recording, Tick
from services.backtest.replay import TOTAL, Replay, ReplayConfig
from shared.book import PriceGrid
from shared.config import load_settings
from shared.messages import (
    BookSnapshot,
    BookState,
    BookStatus,
    Level,
    MarketInfo,
    MarketSettled,
    Side,
    TopOfBook,
)
from shared.money import cents, contracts, dollars
from shared.performance import EquityPoint

T0 = 1_800_000_000 * 10**9
S = 10**9
EVENT = "KXHIGHNY-27JAN15"
# below 30, 30 to 31, above 31: every whole degree exactly once
STRIKES = {
    f"{EVENT}-T30": ("less", None, 30.0),
    f"{EVENT}-B30.5": ("between", 30.0, 31.0),
    f"{EVENT}-T31": ("greater", 31.0, None),
}
MARKETS = sorted(STRIKES)


def market(ticker: str) -> MarketInfo:
    strike_type, floor, cap = STRIKES[ticker]
    return MarketInfo(
        market=ticker,
        event=EVENT,
        series="KXHIGHNY",
        status="active",
        close_ts_ns=T0 + 86_400 * S,
        price_ranges=list(PriceGrid.cents().ranges),
        mutually_exclusive=True,
        strike_type=strike_type,
        floor_strike=floor,
        cap_strike=cap,
    )


def book(ticker: str, yes_bid: int, no_bid: int, seq: int) -> list:
    yes, no = Level(cents(yes_bid), contracts(10)), Level(cents(no_bid), contracts(10))
    return [
        BookStatus(market=ticker, event=EVENT, state=BookState.VALID, reason="snapshot"),
        BookSnapshot(market=ticker, event=EVENT, yes_bids=[yes], no_bids=[no], seq=seq),
        TopOfBook(market=ticker, event=EVENT, yes_bid=yes, no_bid=no),
    ]


def settled(ticker: str, result: Side, at_s: int) -> MarketSettled:
    return MarketSettled(market=ticker, result=result, ts_ns=T0 + at_s * S)


def recording() -> Recording:
    ticks = [
        # a fair book first (YES asks sum to $1.05): nothing to do
        Tick(T0, [i for n, m in enumerate(MARKETS) for i in book(m, 25, 65, n + 1)]),
        # then every NO bid rises to 70: YES asks 30 + 30 + 30 = 90 cents
        Tick(T0 + 5 * S, [i for n, m in enumerate(MARKETS) for i in book(m, 25, 70, n + 4)]),
        Tick(T0 + 3600 * S, [], settled=[settled(MARKETS[0], Side.YES, 3600)]),
        Tick(T0 + 3601 * S, [], settled=[settled(m, Side.NO, 3601) for m in MARKETS[1:]]),
    ]
    return Recording("hand-built", [market(m) for m in MARKETS], ticks, len(ticks))


def settings():
    return load_settings(strategy={"models": []}, metrics={"enabled": False})


async def replayed():
    data = recording()
    return await Replay(settings(), data.markets, ReplayConfig()).run(data)


async def test_an_arbitrage_is_signalled_approved_filled_and_settled():
    results = await replayed()
    approved = [s for s in results.signals if s.approved]
    assert [s.signal.kind for s in approved] == ["atomic_yes"]
    signal = approved[0].signal
    assert approved[0].ts_ns == T0 + 5 * S
    assert sorted(leg.market for leg in signal.legs) == MARKETS
    assert all(leg.price == cents(30) and leg.count == contracts(10) for leg in signal.legs)
    # 0.07 x 10 x 0.30 x 0.70 = $0.147 a leg, rounded up to the cent once per order
    fills = [r.fill for r in results.fills]
    assert sorted(f.market for f in fills) == MARKETS
    assert all(f.price == cents(30) and f.count == contracts(10) for f in fills)
    assert all(f.fee == cents(15) and f.is_taker for f in fills)
    ledger = results.ledgers[TOTAL]
    # paid 3 x $3.00 + 3 x $0.15 = $9.45; the YES winner paid $10
    assert ledger.cash == dollars(10_000) - cents(945) + dollars(10)
    assert not ledger.holdings
    assert results.curves[TOTAL][0] == EquityPoint(T0, dollars(10_000))
    assert results.curves[TOTAL][-1].nav == dollars(10_000) + cents(55)


async def test_the_report_has_the_hand_worked_figures(tmp_path: Path):
    results = await replayed()
    report = reports.build(results, {"title": "hand"})
    total = report["total"]
    assert total["pnl_micros"] == cents(55)
    assert total["fees_micros"] == cents(45)
    assert total["turnover_micros"] == dollars(9)
    assert total["fills"] == 3
    # one event closed out: the set made $10 - $9.45
    assert (total["trades"], total["wins"], total["losses"]) == (1, 1, 0)
    assert total["realized_pnl_micros"] == cents(55)
    assert report["strategies"]["arbitrage"]["pnl_micros"] == cents(55)
    assert report["signals"]["approved"] == 1
    assert report["settled"] == MARKETS
    assert report["period"] == "hour"
    # hourly closes from the hour of T0 to the hour of T0 + 3601 s, one return between each
    assert total["periods"] == (T0 + 3601 * S) // (3600 * S) - T0 // (3600 * S)
    # while held, the contracts were marked at the books' mids, (25 + 30) / 2 = 27.5 cents:
    # NAV fell from $10,000 to $10,000 - $9.45 + 3 x 10 x $0.275 = $9,998.80; the winner's
    # $10 lifted it to $10,006.05 with the losers still marked at $5.50, which their
    # settlement took away: the deepest drawdown, $5.50 of $10,006.05
    navs = [p.nav for p in results.curves[TOTAL]]
    assert dollars(10_000) - cents(120) in navs
    assert max(navs) == dollars(10_006) + cents(5)
    assert total["max_drawdown_micros"] == cents(550)
    assert total["max_drawdown_ppm"] == cents(550) * 1_000_000 // (dollars(10_006) + cents(5))
    paths = reports.write(tmp_path, results, report)
    signals = (tmp_path / "signals.csv").read_text().splitlines()
    assert signals[0].startswith("ts,kind,event_ticker,legs,edge_cents,size")
    row = signals[1].split(",")
    assert row[1:3] == ["atomic_yes", EVENT]
    assert sorted(row[3].split(";")) == [f"{m}:yes:30" for m in MARKETS]
    # per set: $1 - 90 cents - 45 cents / 10 sets = 5.5 cents
    assert row[4] == "5.5" and row[5] == "10"
    assert len((tmp_path / "trades.csv").read_text().splitlines()) == 4
    assert [p.name for p in paths] == ["report.json", "trades.csv", "signals.csv"]


async def test_the_same_replay_writes_the_same_bytes(tmp_path: Path):
    for run in ("a", "b"):
        results = await replayed()
        reports.write(tmp_path / run, results, reports.build(results, {"title": "x"}))
    for name in ("report.json", "trades.csv", "signals.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
