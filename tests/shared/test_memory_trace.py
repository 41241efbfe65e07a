import asyncio
import tracemalloc

from shared.memory_trace import growth_report, trace_growth

KEPT: list[bytes] = []


def grow() -> None:
    KEPT.extend(bytes(1000) for _ in range(2000))


def test_the_report_names_the_site_that_grew():
    tracemalloc.start(8)
    try:
        before = tracemalloc.take_snapshot()
        grow()
        report = growth_report(before, tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
        KEPT.clear()
    first = report.split("\n\n")[1]
    assert "test_memory_trace.py" in first
    assert float(first.split(" MB")[0]) >= 2.0


async def test_a_service_writes_its_report_once_warmed_up(tmp_path, monkeypatch):
    monkeypatch.setenv("KHV_TRACEMALLOC_DIR", str(tmp_path))
    monkeypatch.setenv("KHV_TRACEMALLOC_WARMUP_S", "0.05")
    monkeypatch.setenv("KHV_TRACEMALLOC_EVERY_S", "0.05")
    stop = asyncio.Event()
    task = asyncio.create_task(trace_growth("execution", "a", stop))
    try:
        await asyncio.sleep(0.1)
        grow()
        out = tmp_path / "execution-a.txt"
        for _ in range(100):
            if out.exists() and "test_memory_trace.py" in out.read_text():
                break
            await asyncio.sleep(0.05)
        assert "test_memory_trace.py" in out.read_text()
    finally:
        stop.set()
        await task
        KEPT.clear()
    assert not tracemalloc.is_tracing()


async def test_without_the_variable_nothing_is_traced(monkeypatch):
    monkeypatch.delenv("KHV_TRACEMALLOC_DIR", raising=False)
    await trace_growth("execution", "a", asyncio.Event())
    assert not tracemalloc.is_tracing()


async def test_only_the_named_services_are_traced(tmp_path, monkeypatch):
    monkeypatch.setenv("KHV_TRACEMALLOC_DIR", str(tmp_path))
    monkeypatch.setenv("KHV_TRACEMALLOC_SERVICES", "risk, execution")
    await trace_growth("strategy", "a", asyncio.Event())
    assert not tracemalloc.is_tracing()
