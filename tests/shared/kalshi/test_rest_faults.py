"""Retries, rate limits and ambiguous order creation, with faults injected by the simulator."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from services.simulator.server import SimulatorServer, free_port
from shared.kalshi import (
    KalshiRest,
    KalshiTransportError,
    OrderStateUnknown,
    RateLimited,
    RateLimiter,
    RetryPolicy,
    ServerError,
)
from shared.kalshi import models as m
from shared.money import contracts, parse_dollars
from tests.services.simulator.kit import signer, start_server

FAST = RetryPolicy(max_attempts=12, base_delay_s=0.01, max_delay_s=0.1)


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    sim = start_server()
    yield sim
    sim.stop()


def set_faults(server: SimulatorServer, **faults: Any) -> None:
    with httpx.Client(base_url=server.base_url) as http:
        http.delete("/sim/faults").raise_for_status()
        if faults:
            http.post("/sim/faults", json=faults).raise_for_status()


def fault_log(server: SimulatorServer, kind: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.base_url) as http:
        return [r for r in http.get("/sim/faults/log").json()["log"] if r["fault"] == kind]


@pytest.fixture
def faults(server: SimulatorServer) -> Iterator[None]:
    set_faults(server)
    yield
    set_faults(server)


@pytest.fixture
async def alice(server: SimulatorServer, faults: None) -> AsyncIterator[KalshiRest]:
    client = KalshiRest(server.rest_url, signer=signer("alice"), retry=FAST, rng=random.Random(1))
    async with client:
        yield client


async def a_bid(client: KalshiRest) -> m.CreateOrderV2:
    async for market in client.iter_markets(status="open"):
        bid = parse_dollars(market.yes_bid_dollars or "0")
        if bid > 0:
            return m.new_order(
                market.ticker, "yes", "buy", bid, contracts(1), client_order_id=f"c{time.time_ns()}"
            )
    raise AssertionError("no market with a bid")


async def test_reads_are_retried_through_injected_5xx(
    server: SimulatorServer, alice: KalshiRest
) -> None:
    set_faults(server, http_error_rate=0.5, http_error_status=503)
    for _ in range(10):
        assert (await alice.exchange_status()).exchange_active
    assert alice.metrics.errors_by_status[503] > 0
    assert alice.metrics.retries == alice.metrics.errors_by_status[503]
    assert len(fault_log(server, "http_error")) == alice.metrics.errors_by_status[503]


async def test_retries_stop_after_max_attempts(server: SimulatorServer) -> None:
    set_faults(server, http_error_rate=1.0, http_error_status=502)
    try:
        policy = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01)
        async with KalshiRest(server.rest_url, retry=policy) as client:
            with pytest.raises(ServerError) as caught:
                await client.exchange_status()
        assert caught.value.status == 502
        assert (client.metrics.requests, client.metrics.retries) == (3, 2)
    finally:
        set_faults(server)


async def test_a_rate_limit_storm_is_waited_out(server: SimulatorServer, alice: KalshiRest) -> None:
    set_faults(server, rate_limit_storm_s=0.3)
    started = time.monotonic()
    assert (await alice.exchange_status()).trading_active
    assert time.monotonic() - started >= 0.25
    assert alice.metrics.errors_by_status[429] >= 1
    assert fault_log(server, "rate_limit_storm")


async def test_a_429_is_raised_when_retries_run_out(server: SimulatorServer) -> None:
    set_faults(server, rate_limit_storm_s=5)
    try:
        async with KalshiRest(server.rest_url, retry=RetryPolicy(max_attempts=1)) as client:
            with pytest.raises(RateLimited) as caught:
                await client.exchange_status()
        assert caught.value.message == "too many requests"  # Kalshi's {"error": "..."} body
    finally:
        set_faults(server)


async def test_create_is_not_retried_on_5xx(server: SimulatorServer, alice: KalshiRest) -> None:
    order = await a_bid(alice)
    set_faults(server, http_error_rate=1.0, http_error_status=500)
    with pytest.raises(OrderStateUnknown) as caught:
        await alice.create_order(order)
    assert caught.value.client_order_ids == [order.client_order_id]
    assert alice.metrics.order_state_unknown == 1
    set_faults(server)
    assert order.client_order_id
    assert await alice.find_order_by_client_id(order.client_order_id, ticker=order.ticker) is None


async def test_create_timing_out_is_order_state_unknown_then_resolved(
    server: SimulatorServer,
) -> None:
    async with KalshiRest(server.rest_url, signer=signer("alice"), timeout_s=0.2) as alice:
        order = await a_bid(alice)
        set_faults(server, latency_ms=600)
        try:
            with pytest.raises(OrderStateUnknown) as caught:
                await alice.create_order(order)
            assert "Timeout" in caught.value.cause
            assert alice.metrics.requests == 2  # the market scan, then one create: no retry
        finally:
            set_faults(server)
        await asyncio.sleep(0.6)  # until the server has given up on the request as well
        assert order.client_order_id
        # The simulator drops a request whose client went away during injected latency, so
        # the lookup settles the unknown state as "never placed".
        assert (
            await alice.find_order_by_client_id(order.client_order_id, ticker=order.ticker) is None
        )


async def test_reads_time_out_and_are_retried(server: SimulatorServer) -> None:
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.001, max_delay_s=0.01)
    async with KalshiRest(server.rest_url, timeout_s=0.1, retry=policy) as client:
        set_faults(server, latency_ms=300)
        try:
            with pytest.raises(KalshiTransportError):
                await client.exchange_status()
        finally:
            set_faults(server)
        assert (client.metrics.transport_errors, client.metrics.retries) == (2, 1)


async def test_connection_refused_is_retried_then_reported() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01)
    url = f"http://127.0.0.1:{free_port()}/trade-api/v2"
    async with KalshiRest(url, retry=policy) as client:
        with pytest.raises(KalshiTransportError):
            await client.exchange_status()
        # a create that never reached the server is safe to retry: no OrderStateUnknown
        with pytest.raises(KalshiTransportError):
            await client.create_order(m.new_order("T", "yes", "buy", 500_000, 100))
    assert client.metrics.order_state_unknown == 0


async def test_retry_after_is_honoured() -> None:
    calls: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return httpx.Response(503, headers={"Retry-After": "0.2"}, json={"code": "busy"})
        return httpx.Response(200, json={"exchange_active": True, "trading_active": True})

    transport = httpx.MockTransport(answer)
    async with KalshiRest("http://kalshi.test/trade-api/v2", transport=transport) as client:
        assert (await client.exchange_status()).exchange_active
    assert calls[1] - calls[0] >= 0.19


@pytest.fixture(scope="module")
def basic() -> Iterator[SimulatorServer]:
    """A simulator enforcing the Basic tier: 200 read / 100 write tokens per second."""
    sim = start_server(tier="basic")
    yield sim
    sim.stop()


class TestLowTier:
    """Under the Basic tier the limiter waits by itself: the simulator never says 429."""

    async def test_reads_and_writes_never_hit_429(self, basic: SimulatorServer) -> None:
        # The simulator runs in a thread of this process: under a loaded CI machine the
        # GIL lets requests the limiter spaced out reach it in bunches. A wider
        # headroom than production's absorbs that bunching; the waiting is the same.
        limiter = RateLimiter.for_tier("basic", headroom=0.3, rate_margin=0.15)
        no_retry = RetryPolicy(max_attempts=1)
        async with KalshiRest(
            basic.rest_url, signer=signer("alice"), limiter=limiter, retry=no_retry
        ) as client:
            started = time.monotonic()
            await asyncio.gather(*(client.exchange_status() for _ in range(45)))
            order = await a_bid(client)
            anonymous = m.CreateOrderV2(
                ticker=order.ticker,
                side=order.side,
                count=order.count,
                price=order.price,
                time_in_force=order.time_in_force,
                self_trade_prevention_type=order.self_trade_prevention_type,
            )
            created = await asyncio.gather(
                *(client.create_order(anonymous) for _ in range(12))  # 100 tokens, 10 each
            )
            await asyncio.gather(*(client.cancel_order(c.order_id) for c in created))
            elapsed = time.monotonic() - started
        assert client.metrics.errors_by_status == {}
        assert limiter.waits > 0
        assert elapsed >= 0.3

    async def test_without_the_limiter_the_same_burst_gets_429(
        self, basic: SimulatorServer
    ) -> None:
        # bob's buckets at the exchange are his own, untouched by the test above
        async with KalshiRest(
            basic.rest_url, signer=signer("bob"), retry=RetryPolicy(max_attempts=1)
        ) as client:
            results = await asyncio.gather(
                *(client.exchange_status() for _ in range(45)), return_exceptions=True
            )
        assert any(isinstance(r, RateLimited) for r in results)
