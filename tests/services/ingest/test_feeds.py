"""The outside feeds end to end: real sources (the simulator's NWS feed, a local Polymarket-
shaped WebSocket server, quote files and an HTTP endpoint) publishing to real Redis."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection, serve

from services.ingest.fed import FedPoller, parse_quotes_csv
from services.ingest.feeds import FeedState, FeedWatch
from services.ingest.nws import NwsPoller, nws_client
from services.ingest.polymarket import PolymarketFeed, Throttle
from services.simulator.server import SimulatorServer
from shared.backoff import Backoff
from shared.bus.codec import Codec
from shared.bus.publisher import Publisher
from shared.fedwatch import Month
from shared.feeds_config import (
    FedSettings,
    NwsSettings,
    PolymarketLinkConfig,
    PolymarketSettings,
    Retry,
)
from shared.messages import FedOdds, FeedStatus, Level, Message, VenueBook, WeatherObservation
from shared.polymarket import parse_price
from shared.streams import OBSERVATIONS, stream_key
from shared.weather import climate_date
from tests.services.simulator.kit import start_server

DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "polymarket"
FAST_RETRY = Retry(base_s=0.05, cap_s=0.2)
NS = 1_000_000_000


async def published(aredis: aioredis.Redis, prefix: str) -> list[Message]:
    codec = Codec(OBSERVATIONS)
    entries: Any = await aredis.xrange(stream_key(prefix, OBSERVATIONS))
    return [codec.decode_entry(fields) for _, fields in entries]


async def wait_for(
    aredis: aioredis.Redis,
    prefix: str,
    found: Callable[[list[Message]], bool],
    timeout_s: float = 5.0,
) -> list[Message]:
    deadline = time.monotonic() + timeout_s
    while True:
        messages = await published(aredis, prefix)
        if found(messages):
            return messages
        if time.monotonic() > deadline:
            raise AssertionError(f"not on the stream after {timeout_s} s: {messages[-5:]}")
        await asyncio.sleep(0.05)


def statuses(messages: list[Message], feed: str) -> list[bool]:
    return [m.fresh for m in messages if isinstance(m, FeedStatus) and m.feed == feed]


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Any], None]]:
    """Start ``feed.run(stop)`` tasks; stopped (and checked for crashes) at the end."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    def start(feed: Any) -> None:
        tasks.append(asyncio.create_task(feed.run(stop)))

    yield start
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)


# --- freshness, pure ------------------------------------------------------------------------


def test_feed_state_fresh_heartbeat_stale_once_and_recovery() -> None:
    state = FeedState("f", stale_after_ns=10 * NS, heartbeat_ns=5 * NS, started_ns=0)
    assert state.on_tick(9 * NS) is None  # not yet silent past the limit
    first = state.on_message(1 * NS)
    assert first is not None and first.fresh and first.last_message_ns == NS
    assert state.on_message(2 * NS) is None  # within the heartbeat interval
    beat = state.on_message(6 * NS)
    assert beat is not None and beat.fresh
    assert state.on_tick(16 * NS) is None  # exactly at the limit
    stale = state.on_tick(17 * NS)
    assert stale is not None and not stale.fresh and "silent" in stale.reason
    assert state.on_tick(30 * NS) is None  # published once
    recovered = state.on_message(31 * NS)
    assert recovered is not None and recovered.fresh


def test_feed_state_silent_from_the_start_and_failures() -> None:
    state = FeedState("f", stale_after_ns=10 * NS, heartbeat_ns=5 * NS, started_ns=100 * NS)
    stale = state.on_tick(111 * NS)
    assert stale is not None and not stale.fresh
    state.on_message(112 * NS)
    failed = state.on_failure(113 * NS, "connection lost")
    assert failed is not None and (failed.fresh, failed.reason) == (False, "connection lost")
    assert state.on_failure(114 * NS, "again") is None


def test_retry_delay_doubles_to_its_cap_with_jitter() -> None:
    delay = Backoff(1.0, 8.0, jitter=lambda: 1.0)
    assert [delay.next() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    delay.reset()
    assert Backoff(1.0, 8.0, jitter=lambda: 0.0).next() == 0.5
    assert delay.next() == 1.0


def test_throttle_holds_changes_to_the_interval_and_keeps_the_last() -> None:
    throttle = Throttle(min_interval_ns=100)
    assert throttle.offer("a", 1000)
    assert not throttle.offer("a", 1050)
    assert not throttle.offer("a", 1060)
    assert throttle.offer("b", 1060)
    assert throttle.next_due_ns() == 1100
    assert throttle.take_due(1099) == []
    assert throttle.take_due(1100) == ["a"]
    assert throttle.next_due_ns() is None


async def test_feed_watch_publishes_to_the_stream(aredis: aioredis.Redis, key_prefix: str) -> None:
    now = [0]
    watch = FeedWatch(
        Publisher(aredis, key_prefix, shards=1),
        "x",
        stale_after_s=1,
        heartbeat_s=10,
        clock_ns=lambda: now[0],
    )
    await watch.beat()
    now[0] = 2 * NS
    await watch.check()
    await watch.check()
    assert statuses(await published(aredis, key_prefix), "x") == [True, False]
    assert watch.label == "stale"


# --- NWS against the simulator ---------------------------------------------------------------


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    server = start_server(scenario="weather", agents=False)
    yield server
    server.stop()


def oracle_max_f(server: SimulatorServer, station: str) -> float:
    """The maximum of the hidden temperatures at the 5-minute reports of today so far."""
    now = server.state.clock_ms()
    days = [d for d in server.state.scenario.city_days if d.city.station == station]
    day = max((d for d in days if d.day_start_ms <= now), key=lambda d: d.day_start_ms)
    newest = now - now % 300_000
    stamps = range(newest, day.day_start_ms - 1, -300_000)
    highest: float = max(day.temperature_f(ms) for ms in stamps)
    return highest


def nws_settings(server: SimulatorServer) -> NwsSettings:
    return NwsSettings(
        base_url=f"{server.base_url}/nws",
        user_agent="kalshi-hv-bot-tests (tests@example.invalid)",
        stations=["KNYC", "KLAX"],  # ids are looked up in the station table
        forecast=False,
        poll_interval_s=0.1,
        stale_after_s=0.5,
        heartbeat_s=0.2,
        retry=FAST_RETRY,
    )


async def test_nws_poller_publishes_the_climate_day_max_and_goes_stale_and_back(
    simulator: SimulatorServer,
    aredis: aioredis.Redis,
    key_prefix: str,
    running: Callable[[Any], None],
) -> None:
    poller = NwsPoller(nws_settings(simulator), Publisher(aredis, key_prefix, shards=1))
    running(poller)

    def weather(messages: list[Message]) -> list[WeatherObservation]:
        return [m for m in messages if isinstance(m, WeatherObservation)]

    messages = await wait_for(aredis, key_prefix, lambda ms: len(weather(ms)) >= 2)
    by_station = {m.station: m for m in weather(messages)}
    assert set(by_station) == {"KNYC", "KLAX"}
    for station, offset in (("KNYC", -5), ("KLAX", -8)):
        observation = by_station[station]
        assert observation.local_date == climate_date(datetime.now(UTC), offset).isoformat()
        assert observation.observed_max_tenths_f is not None
        # the simulator reports °C to a tenth: 0.09 °F, plus our rounding to a tenth of °F
        assert abs(observation.observed_max_tenths_f / 10 - oracle_max_f(simulator, station)) < 0.15
        assert observation.forecast_high_tenths_f is None
        assert observation.observed_at_ns > 0
    assert statuses(messages, "nws:KNYC")[0] is True
    assert poller.info() == {"nws:KNYC": "fresh", "nws:KLAX": "fresh"}

    port = simulator.settings.port
    simulator.stop()  # the source goes away
    await wait_for(aredis, key_prefix, lambda ms: statuses(ms, "nws:KNYC")[-1:] == [False])
    assert poller.info()["nws:KLAX"] == "stale"
    restarted = start_server(scenario="weather", agents=False, port=port)
    try:
        await wait_for(aredis, key_prefix, lambda ms: statuses(ms, "nws:KNYC")[-1:] == [True])
    finally:
        restarted.stop()
    knyc = statuses(await published(aredis, key_prefix), "nws:KNYC")
    assert knyc.count(False) == 1  # stale is said once, heartbeats are fresh


def nws_route(request: httpx.Request, now: datetime) -> httpx.Response:
    """api.weather.gov's answers for one station: two reports today, points, a forecast."""
    path = request.url.path
    if request.headers.get("user-agent") != "ua-test (tests@example.invalid)":
        return httpx.Response(403, json={"detail": "A User-Agent is required"})
    early = (now - timedelta(hours=1)).isoformat()
    reports = [
        {
            "properties": {
                "stationId": "KNYC",
                "timestamp": early,
                "temperature": {"unitCode": "wmoUnit:degC", "value": 30.0, "qualityControl": "V"},
            }
        },
        {
            "properties": {
                "stationId": "KNYC",
                "timestamp": now.isoformat(),
                "temperature": {"unitCode": "wmoUnit:degC", "value": 28.0, "qualityControl": "V"},
            }
        },
    ]
    if path.endswith("/observations"):
        assert request.url.params["start"].endswith("+00:00")
        return httpx.Response(200, json={"features": reports[::-1]})
    if path.endswith("/observations/latest"):
        return httpx.Response(200, json=reports[1])
    if path.startswith("/points/"):
        points = DATA.parent / "nws" / "points.json"
        if not points.is_file():
            return httpx.Response(404)
        return httpx.Response(200, content=points.read_bytes())
    if path.endswith("/forecast"):
        start = datetime.combine(climate_date(now, -5), datetime.min.time()).isoformat()
        period = {
            "startTime": f"{start}-05:00",
            "isDaytime": True,
            "temperature": 91,
            "temperatureUnit": "F",
        }
        return httpx.Response(200, json={"properties": {"periods": [period]}})
    return httpx.Response(404)


async def test_nws_station_reads_the_day_so_far_and_the_forecast(
    aredis: aioredis.Redis, key_prefix: str
) -> None:
    if not (DATA.parent / "nws" / "points.json").is_file():
        pytest.skip("recorded NWS points response is absent (it lives outside the project)")
    now = datetime.now(UTC).replace(microsecond=0)
    settings = NwsSettings(user_agent="ua-test (tests@example.invalid)", stations=["KNYC"])
    client = nws_client(settings, httpx.MockTransport(lambda request: nws_route(request, now)))
    poller = NwsPoller(settings, Publisher(aredis, key_prefix, shards=1), client=client)
    station = poller.stations[0]
    await station.poll_once()
    await client.aclose()
    assert station.forecast_url == "https://api.weather.gov/gridpoints/TAE/58,65/forecast"
    (observation,) = [
        m for m in await published(aredis, key_prefix) if isinstance(m, WeatherObservation)
    ]
    assert observation.local_date == climate_date(now, -5).isoformat()
    if climate_date(now - timedelta(hours=1), -5) == climate_date(now, -5):
        assert observation.observed_max_tenths_f == 860  # the earlier report, read back
    assert observation.forecast_high_tenths_f == 910
    assert observation.observed_at_ns == int(now.timestamp()) * NS


# --- Polymarket against a local market-channel server ---------------------------------------


def recorded_book() -> dict[str, Any]:
    path = DATA / "ws_book_snapshot_captured.json"
    if not path.is_file():
        pytest.skip(f"recorded Polymarket book {path} is absent (it lives outside the project)")
    book: dict[str, Any] = json.loads(path.read_text())
    return book


class MarketChannel:
    """A WebSocket server speaking Polymarket's market-channel shapes, from a script."""

    def __init__(self, book: dict[str, Any], changes: list[dict[str, Any]]) -> None:
        self.book, self.changes = book, changes
        self.subscriptions: list[Any] = []
        self.pings = 0
        self.connections = 0
        self.drop_first = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.subscriptions.append(json.loads(await ws.recv()))
        await ws.send(json.dumps([self.book]))
        for change in self.changes:
            await ws.send(json.dumps(change))
        if self.connections == 1:
            await self.drop_first.wait()
            return  # closes the connection
        async for frame in ws:
            if frame == "PING":
                self.pings += 1
                await ws.send("PONG")


def change(asset: str, side: str, price: str, size: str) -> dict[str, Any]:
    return {
        "event_type": "price_change",
        "market": "0xm",
        "timestamp": str(int(time.time() * 1000)),
        "price_changes": [{"asset_id": asset, "price": price, "size": size, "side": side}],
    }


async def test_polymarket_feed_books_no_mapping_throttle_and_reconnect(
    aredis: aioredis.Redis, key_prefix: str, running: Callable[[Any], None]
) -> None:
    book = recorded_book()
    token = book["asset_id"]
    changes = [change(token, "BUY", ".08", str(n)) for n in range(1, 21)]  # 20 quick changes
    changes += [change(token, "SELL", "0.99", "0"), change(token, "BUY", "0.01", "12.345678")]
    channel = MarketChannel(book, changes)
    async with serve(channel.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        settings = PolymarketSettings(
            enabled=True,
            ws_url=f"ws://127.0.0.1:{port}",
            markets={
                "KXYES": token,
                "KXNO": PolymarketLinkConfig(token_id=token, token_is_no=True),
            },
            taker_fee_rate=0.04,
            ping_interval_s=0.05,
            stale_after_s=1.0,
            heartbeat_s=0.1,
            max_updates_per_s=10,
            retry=FAST_RETRY,
        )
        feed = PolymarketFeed(settings, Publisher(aredis, key_prefix, shards=1))
        running(feed)

        def books(messages: list[Message], market: str) -> list[VenueBook]:
            return [m for m in messages if isinstance(m, VenueBook) and m.market == market]

        def settled(market: str, side: str) -> Callable[[list[Message]], bool]:
            def check(messages: list[Message]) -> bool:
                last = books(messages, market)[-1:]
                # the last change, .01 x 12.345678, rounds down to 12.34 (YES bid, NO-view ask)
                return bool(last) and getattr(last[0], side)[-1].count == 1_234

            return check

        messages = await wait_for(aredis, key_prefix, settled("KXYES", "bids"))
        assert channel.subscriptions[0] == {"assets_ids": [token], "type": "market"}
        yes = books(messages, "KXYES")
        # 22 changes after the book inside ~0 s: the throttle lets a few through, the last wins
        assert 2 <= len(yes) <= 5
        final = yes[-1]
        assert final.bids[0] == Level(80_000, 2_000)  # .08 x 20 on top of the recorded .07
        assert final.bids[-1] == Level(10_000, 1_234)
        assert final.asks[-1].price == parse_price("0.98")  # the 0.99 level was removed
        assert final.taker_fee_rate == 0.04 and final.venue == "polymarket"
        no = await wait_for(aredis, key_prefix, settled("KXNO", "asks"))
        mirrored = books(no, "KXNO")[-1]
        assert mirrored.asks[0] == Level(920_000, 2_000)  # YES bid .08 = NO-token view: ask .92
        assert mirrored.bids == [Level(1_000_000 - a.price, a.count) for a in final.asks]
        assert statuses(no, "polymarket")[0] is True

        channel.drop_first.set()  # the server drops us: stale at once, then back
        messages = await wait_for(
            aredis, key_prefix, lambda ms: statuses(ms, "polymarket").count(False) == 1
        )
        await wait_for(
            aredis,
            key_prefix,
            lambda ms: statuses(ms, "polymarket")[-1:] == [True] and channel.pings >= 2,
        )
        assert channel.connections == 2
        assert channel.subscriptions[1] == channel.subscriptions[0]


# --- Fed from a file and from HTTP ----------------------------------------------------------

CME_QUOTES = {
    "as_of": "2015-09-01",
    "target_upper_bp": 25,
    "zq": {"2015-08": 99.8675, "2015-09": "99.805"},
}
CME_MEETINGS = [date(2015, 9, 17), date(2015, 10, 28)]


def fed_settings(**overrides: Any) -> FedSettings:
    base: dict[str, Any] = {
        "enabled": True,
        "meetings": CME_MEETINGS,
        "poll_interval_s": 0.1,
        "stale_after_s": 0.4,
        "heartbeat_s": 0.1,
        "retry": FAST_RETRY,
    }
    return FedSettings(**{**base, **overrides})


def assert_cme_odds(odds: FedOdds) -> None:
    assert odds.meeting == "2015-09-17"
    assert odds.upper_bound_bp_probs[50] == pytest.approx(0.536, abs=0.0005)
    assert sum(odds.upper_bound_bp_probs.values()) == pytest.approx(1.0)


async def test_fed_from_a_json_file_goes_stale_when_the_file_goes(
    tmp_path: Path, aredis: aioredis.Redis, key_prefix: str, running: Callable[[Any], None]
) -> None:
    path = tmp_path / "zq.json"
    path.write_text(json.dumps(CME_QUOTES))
    poller = FedPoller(fed_settings(path=path), Publisher(aredis, key_prefix, shards=1))
    (odds,) = await poller.poll_once()
    assert_cme_odds(odds)
    (on_stream,) = [m for m in await published(aredis, key_prefix) if isinstance(m, FedOdds)]
    assert_cme_odds(on_stream)

    running(poller)
    path.unlink()
    await wait_for(aredis, key_prefix, lambda ms: statuses(ms, "fed")[-1:] == [False])
    path.write_text(json.dumps(CME_QUOTES))
    await wait_for(aredis, key_prefix, lambda ms: statuses(ms, "fed")[-1:] == [True])


async def test_fed_from_a_csv_file(tmp_path: Path, aredis: aioredis.Redis, key_prefix: str) -> None:
    path = tmp_path / "zq.csv"
    path.write_text("key,value\n2015-08,99.8675\n2015-09,99.805\neffr,0.14\n")
    settings = fed_settings(path=path, current_upper_bp=25)
    poller = FedPoller(
        settings, Publisher(aredis, key_prefix, shards=1), today=lambda: date(2015, 9, 1)
    )
    (odds,) = await poller.poll_once()
    assert_cme_odds(odds)
    quotes = parse_quotes_csv(path.read_text())
    assert quotes.zq == {Month(2015, 8): 99.8675, Month(2015, 9): 99.805}
    assert (quotes.effr, quotes.as_of, quotes.target_upper_bp) == (0.14, None, None)


@pytest.fixture
def quote_endpoint() -> Iterator[str]:
    body = json.dumps(CME_QUOTES).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=http.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_address[1]}/zq"
    http.shutdown()
    http.server_close()


async def test_fed_from_an_http_endpoint(
    quote_endpoint: str, aredis: aioredis.Redis, key_prefix: str
) -> None:
    settings = fed_settings(source="http", url=quote_endpoint)
    (odds,) = await FedPoller(settings, Publisher(aredis, key_prefix, shards=1)).poll_once()
    assert_cme_odds(odds)


def test_fed_settings_need_their_source() -> None:
    with pytest.raises(ValueError, match=r"needs feeds\.fed\.path"):
        FedSettings(enabled=True, source="file")
    with pytest.raises(ValueError, match=r"needs feeds\.fed\.url"):
        FedSettings(enabled=True, source="http")
