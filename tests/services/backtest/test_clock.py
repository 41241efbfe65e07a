"""The simulated clock: timers in (time, insertion) order, time never backwards, pacing."""

from __future__ import annotations

import pytest

from services.backtest.clock import NS_PER_S, Pacer, SimClock, Timers


async def test_timers_run_in_time_then_insertion_order_with_the_clock_following():
    clock = SimClock(100)
    timers = Timers(clock)
    seen: list[tuple[str, int]] = []

    def job(name: str):
        async def run() -> None:
            seen.append((name, clock()))

        return run

    timers.at(300, job("late"))
    timers.at(200, job("first at 200"))
    timers.at(200, job("second at 200"))
    timers.at(900, job("not yet"))
    await timers.run_until(300)
    assert seen == [("first at 200", 200), ("second at 200", 200), ("late", 300)]
    assert timers.next_due() == 900


def test_the_clock_never_goes_backwards():
    clock = SimClock(500)
    clock.advance(400)
    assert clock() == 500
    clock.advance(700)
    assert clock() == 700


def test_pacing_at_real_time_times_n():
    pacer = Pacer(10.0)
    assert pacer.delay(5 * NS_PER_S, wall_s=1000.0) == 0.0  # the first tick sets the origin
    # 20 s of data later at 10x is 2 s of wall time later; 0.5 s have passed
    assert pacer.delay(25 * NS_PER_S, wall_s=1000.5) == pytest.approx(1.5)
    assert pacer.delay(25 * NS_PER_S, wall_s=1003.0) == 0.0  # behind: no wait
    assert Pacer(0).delay(10**18, wall_s=0.0) == 0.0
    with pytest.raises(ValueError, match="speed"):
        Pacer(-1)
