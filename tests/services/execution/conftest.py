"""Fixtures of the execution tests that trade at the simulator: bob makes the liquidity,
alice trades through the live venue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from services.execution.live import LiveVenue
from services.simulator.server import SimulatorServer
from shared.kalshi import KalshiRest
from shared.kalshi import models as m
from shared.money import cents
from tests.services.execution.kit import FAST, Market, Recorder, ws_factory
from tests.services.simulator.kit import signer, start_server


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    server = start_server(agents=False)
    yield server
    server.stop()


@pytest.fixture
async def bob(sim: SimulatorServer) -> AsyncIterator[KalshiRest]:
    async with KalshiRest(sim.rest_url, signer=signer("bob"), retry=FAST) as client:
        yield client


@pytest.fixture
async def market(bob: KalshiRest) -> Market:
    """An open cent-grid market far from its close, with its series' fee schedule."""
    markets = [
        x
        async for x in bob.iter_markets(status="open")
        if [step for _, _, step in m.price_grid(x.price_ranges)] == [cents(1)]
    ]
    chosen = max(markets, key=lambda x: x.close_time or "")
    event = await bob.get_event(chosen.event_ticker)
    series = await bob.get_series(event.event.series_ticker)
    return Market(chosen.ticker, series.fee_type, series.fee_multiplier)


@pytest.fixture
async def sink() -> Recorder:
    return Recorder()


@pytest.fixture
async def venue(sim: SimulatorServer, sink: Recorder) -> AsyncIterator[LiveVenue]:
    async with KalshiRest(sim.rest_url, signer=signer("alice"), retry=FAST) as rest:
        live = LiveVenue(rest, ws_factory(sim))
        await live.start(sink)
        yield live
        await live.close()
