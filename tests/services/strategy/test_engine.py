"""The strategy engine on constructed market data: what it signals, and what it refuses."""

from __future__ import annotations

from services.strategy.engine import StrategyEngine
from shared.messages import (
    BookDelta,
    BookSnapshot,
    BookState,
    BookStatus,
    FeedStatus,
    Level,
    MarketInfo,
    PortfolioState,
    Side,
    TopOfBook,
    TradingState,
    VenueBook,
    WeatherObservation,
)
from shared.money import cents, contracts
from shared.strategy_config import StrategySettings
from tests.shared.test_arbitrage import market, weather_event

EVENT = "KXHIGHNY-25DEC05"
MS = 1_000_000
NOW = 1_764_950_400 * 10**9


def snapshot(ticker: str, yes: list[tuple[int, int]], no: list[tuple[int, int]], seq: int = 1):
    return BookSnapshot(
        market=ticker,
        event=ticker.rsplit("-", 1)[0],
        yes_bids=[Level(cents(p), contracts(c)) for p, c in yes],
        no_bids=[Level(cents(p), contracts(c)) for p, c in no],
        seq=seq,
    )


def cheap_brackets(infos: list[MarketInfo]) -> list[BookSnapshot]:
    """YES asks 20+20+20+20 = 80 cents for a set paying $1: an atomic arbitrage."""
    return [snapshot(i.market, yes=[(10, 50)], no=[(80, 50)]) for i in infos]


def fair_brackets(infos: list[MarketInfo]) -> list[BookSnapshot]:
    """YES asks 26 each: 104 cents a set, and NO asks 76 each: 304 for $3. Nothing."""
    return [snapshot(i.market, yes=[(24, 50)], no=[(74, 50)]) for i in infos]


def engine(**overrides: object) -> StrategyEngine:
    settings = StrategySettings(models=[], **overrides)  # type: ignore[arg-type]
    built = StrategyEngine(settings)
    built.on_markets(weather_event(EVENT))
    return built


def test_atomic_arbitrage_is_signalled_with_every_leg():
    strategy = engine()
    signals = strategy.on_market_data(cheap_brackets(weather_event(EVENT)), NOW)
    assert [s.kind for s in signals] == ["atomic_yes"]
    signal = signals[0]
    assert signal.strategy == "arbitrage" and signal.event == EVENT
    assert {leg.market for leg in signal.legs} == {i.market for i in weather_event(EVENT)}
    assert all(leg.side is Side.YES and leg.price == cents(20) for leg in signal.legs)
    # 4 x 20c plus 4 x ceil(0.07 x 0.2 x 0.8 x n) per leg: profit per set about 13 cents
    assert cents(12) <= signal.edge <= cents(20)
    assert signal.ev > 0 and signal.kelly_fraction > 0 and signal.model_p == 1.0
    assert signal.expires_ns == NOW + 2_000 * MS


def test_fair_books_give_nothing():
    strategy = engine()
    assert strategy.on_market_data(fair_brackets(weather_event(EVENT)), NOW) == []


def test_same_books_give_the_same_signal_id_in_another_process():
    first = engine().on_market_data(cheap_brackets(weather_event(EVENT)), NOW)
    second = engine().on_market_data(cheap_brackets(weather_event(EVENT)), NOW + 5 * MS)
    assert first[0].signal_id == second[0].signal_id


def test_an_invalid_book_is_never_traded_until_its_next_snapshot():
    infos = weather_event(EVENT)
    strategy = engine(cooldown_s=0)
    strategy.on_market_data(fair_brackets(infos), NOW)
    invalid = BookStatus(market=infos[0].market, event=EVENT, state=BookState.INVALID, reason="gap")
    # while one leg's book is untrusted, even a delta that makes the set cheap is ignored
    cheap_delta = BookDelta(
        market=infos[0].market,
        event=EVENT,
        side=Side.NO,
        price=cents(99),
        delta=contracts(5),
        seq=9,
    )
    assert strategy.on_market_data([invalid, cheap_delta], NOW + 200 * MS) == []
    assert strategy.books.book(infos[0].market) is None
    assert strategy.on_market_data(cheap_brackets(infos), NOW + 400 * MS) != []


def test_a_stale_kalshi_connection_stops_all_signals():
    strategy = engine()
    stale = FeedStatus(feed="kalshi", fresh=False, last_message_ns=NOW)
    strategy.on_observation(stale, NOW)
    assert strategy.on_market_data(cheap_brackets(weather_event(EVENT)), NOW) == []
    strategy.on_observation(FeedStatus(feed="kalshi", fresh=True, last_message_ns=NOW), NOW)
    assert strategy.on_market_data(cheap_brackets(weather_event(EVENT)), NOW + 200 * MS) != []


def test_scans_of_one_event_are_throttled_and_deferred_changes_scanned_later():
    infos = weather_event(EVENT)
    strategy = engine(scan_hz=10.0)
    strategy.on_market_data(fair_brackets(infos), NOW)
    assert strategy.scans == 1
    # 30 ms later the books turn cheap: inside the 100 ms window, so deferred
    assert strategy.on_market_data(cheap_brackets(infos), NOW + 30 * MS) == []
    assert strategy.tick(NOW + 60 * MS) == []
    signals = strategy.tick(NOW + 100 * MS)
    assert [s.kind for s in signals] == ["atomic_yes"]
    assert strategy.scans == 2


def test_the_same_legs_are_not_signalled_again_within_the_cooldown():
    infos = weather_event(EVENT)
    strategy = engine(cooldown_s=1.0)
    assert strategy.on_market_data(cheap_brackets(infos), NOW) != []
    again = [snapshot(i.market, yes=[(10, 50)], no=[(80, 60)], seq=2) for i in infos]
    assert strategy.on_market_data(again, NOW + 500 * MS) == []
    assert strategy.on_market_data(again, NOW + 1_000 * MS) != []


def test_events_of_other_shards_are_not_scanned():
    strategy = engine()
    strategy.set_owner(lambda event: event != EVENT)
    assert strategy.on_market_data(cheap_brackets(weather_event(EVENT)), NOW) == []


def test_the_arbitrage_budget_follows_the_portfolio_and_its_recovery_mode():
    def sets(state: PortfolioState | None) -> int:
        strategy = engine()
        if state is not None:
            strategy.on_portfolio(state)
        deep = [snapshot(i.market, yes=[(10, 5000)], no=[(80, 5000)]) for i in weather_event(EVENT)]
        return strategy.on_market_data(deep, NOW)[0].legs[0].count

    def portfolio(nav_dollars: int, recovery: bool) -> PortfolioState:
        return PortfolioState(
            cash=0,
            nav=nav_dollars * 1_000_000,
            peak_nav=0,
            daily_pnl=0,
            drawdown_ppm=0,
            trading_state=TradingState.ACTIVE,
            recovery_mode=recovery,
            positions=[],
        )

    # the payout of the sets bought stays within kelly_fraction x NAV
    assert sets(portfolio(1_000, recovery=False)) == contracts(250)
    assert sets(portfolio(1_000, recovery=True)) == contracts(100)
    assert sets(None) == contracts(2_500)  # the configured $10,000 until risk reports


def test_a_venue_priced_market_gets_a_cross_venue_signal():
    info = market("KXPRES-28-DEM", "KXPRES-28", exclusive=False)
    strategy = StrategyEngine(StrategySettings(models=["venue"], arbitrage=False))
    strategy.on_markets([info])
    venue = VenueBook(
        venue="polymarket",
        market=info.market,
        bids=[Level(cents(60), contracts(500))],
        asks=[Level(cents(61), contracts(500))],
        taker_fee_rate=0.0,
        observed_at_ns=NOW,
    )
    strategy.on_observation(venue, NOW)
    # Kalshi sells YES at 50 (a NO bid at 50): ten cents under the other venue's price
    later = NOW + 200 * MS  # the observation just scanned the event: next window
    signals = strategy.on_market_data([snapshot(info.market, [(45, 100)], [(50, 100)])], later)
    assert [(s.kind, s.strategy) for s in signals] == [("cross_venue", "venue")]
    leg = signals[0].legs[0]
    assert leg.side is Side.YES and leg.price == cents(50)
    assert 0.6 < signals[0].model_p < 0.61
    # a stale venue feed withdraws the model
    strategy.on_observation(FeedStatus(feed="polymarket", fresh=False, last_message_ns=NOW), NOW)
    again = [snapshot(info.market, [(45, 100)], [(50, 120)], seq=2)]
    assert strategy.on_market_data(again, NOW + 3_000 * MS) == []


def test_a_weather_observation_prices_the_ladder_and_signals_the_sure_market():
    infos = weather_event(EVENT)
    strategy = StrategyEngine(StrategySettings(models=["weather"], arbitrage=False))
    strategy.on_markets(infos)
    # greater-than-36 sells YES at 80 cents (NO bid 20) while 40 F has already been observed
    books = [snapshot(i.market, yes=[(1, 10)], no=[(90, 10)]) for i in infos[:3]]
    books.append(snapshot(infos[3].market, yes=[(70, 40)], no=[(20, 40)]))
    assert strategy.on_market_data(books, NOW) == []  # no observation: no model, no signal
    observed = WeatherObservation(
        station="KNYC",
        local_date="2025-12-05",
        observed_max_tenths_f=400,
        forecast_high_tenths_f=410,
        observed_at_ns=NOW - 600 * 10**9,
    )
    signals = strategy.on_observation(observed, NOW + 200 * MS)
    assert [(s.kind, s.strategy, s.legs[0].market) for s in signals] == [
        ("model", "weather", infos[3].market)
    ]
    assert signals[0].model_p == 1.0 and signals[0].legs[0].side is Side.YES


def test_a_moved_best_bid_is_scanned_at_once_inside_the_throttle_window():
    infos = weather_event(EVENT)
    strategy = engine(scan_hz=10.0)
    strategy.on_market_data(fair_brackets(infos), NOW)
    cheap = cheap_brackets(infos)
    tops = [
        TopOfBook(market=s.market, event=s.event, yes_bid=s.yes_bids[-1], no_bid=s.no_bids[-1])
        for s in cheap
        if isinstance(s, BookSnapshot)
    ]
    signals = strategy.on_market_data([*cheap, *tops], NOW + 30 * MS)
    assert [s.kind for s in signals] == ["atomic_yes"]
    assert strategy.scans == 2 and strategy.next_due_ns() is None
