"""Service processes: one active risk instance, the standby takes over; config errors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import yaml
from pydantic import BaseModel

from shared.bus.codec import Codec
from shared.config import Settings, load_settings
from shared.messages import Heartbeat
from shared.streams import HEARTBEATS, stream_key
from tests.conftest import redis_url


def spawn(service: str, instance: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", f"services.{service}", "--instance", instance],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def latest_roles(client: redis.Redis, prefix: str, since_ns: int) -> dict[str, str]:
    codec = Codec(HEARTBEATS)
    roles: dict[str, str] = {}
    for _, fields in client.xrange(stream_key(prefix, HEARTBEATS)):
        beat = codec.decode_entry(fields)
        assert isinstance(beat, Heartbeat)
        if beat.ts_ns >= since_ns:
            roles[beat.instance] = beat.role
    return roles


def wait_for(predicate, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


@pytest.mark.slow
def test_two_risk_instances_one_active_standby_takes_over(key_prefix):
    client = redis.Redis.from_url(redis_url())
    env = {"KHV_KEY_PREFIX": key_prefix, "REDIS_URL": redis_url(), "KHV_BUS__LEASE_TTL_MS": "1500"}
    a = spawn("risk", "risk-a", env)
    time.sleep(0.5)
    b = spawn("risk", "risk-b", env)
    try:
        t0 = time.time_ns()
        wait_for(lambda: len(latest_roles(client, key_prefix, t0)) == 2, 15)
        time.sleep(1.5)
        roles = latest_roles(client, key_prefix, time.time_ns() - 1_100_000_000)
        assert sorted(roles.values()) == ["active", "standby"], roles
        leader = next(name for name, role in roles.items() if role == "active")
        survivor = "risk-b" if leader == "risk-a" else "risk-a"
        (a if leader == "risk-a" else b).send_signal(signal.SIGKILL)
        killed_at = time.time_ns()
        took = wait_for(
            lambda: latest_roles(client, key_prefix, killed_at).get(survivor) == "active", 10
        )
        print(f"standby active {took:.2f} s after the leader was killed")
        assert took < 5.0
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
        client.close()
    assert {a.returncode, b.returncode} <= {0, -signal.SIGKILL}


def run_service(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KHV_")}
    return subprocess.run(
        [sys.executable, "-m", "services.risk", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"KHV_BUS__SHARDS": "0"}, "bus.shards"),
        ({"KHV_MODE": "yolo"}, "mode"),
        ({"KHV_MODE": "live", "DASHBOARD_TOKEN": "s3cr3t-token"}, "KALSHI_KEY_ID"),
        ({"KALSHI_PRIVATE_KEY_PATH": "/nonexistent/key.pem"}, "KALSHI_PRIVATE_KEY_PATH"),
        ({"KHV_CONFIG": "/nonexistent.yaml"}, "does not exist"),
    ],
)
def test_bad_config_stops_with_one_clear_line(env, needle):
    result = run_service(env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("risk: config error: ")
    assert needle in lines[0]
    assert "Traceback" not in result.stderr
    assert "s3cr3t-token" not in result.stderr + result.stdout


def test_yaml_errors_name_the_key(tmp_path):
    bad = tmp_path / "settings.yaml"
    bad.write_text("bus:\n  shards: many\n")
    result = run_service({}, "--config", str(bad))
    assert result.returncode == 2
    assert "bus.shards" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("bsu:\n  shards: 3\n")
    result = run_service({}, "--config", str(unknown))
    assert result.returncode == 2 and "bsu" in result.stderr


def test_every_service_has_help():
    for service in (
        "ingest",
        "strategy",
        "risk",
        "execution",
        "dashboard",
        "simulator",
        "backtest",
    ):
        result = subprocess.run(
            [sys.executable, "-m", f"services.{service}", "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, (service, result.stderr)
        assert f"services.{service}" in result.stdout


def keys_of(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= keys_of(annotation, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def flatten(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for name, value in tree.items():
        if isinstance(value, dict) and value:
            keys |= flatten(value, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "settings.example.yaml"


def test_example_settings_file_documents_every_key_with_its_default(monkeypatch):
    for name in list(os.environ):
        if name.startswith("KHV_") or name in {"REDIS_URL", "DATABASE_URL"}:
            monkeypatch.delenv(name)
    documented = flatten(yaml.safe_load(EXAMPLE.read_text()))
    assert documented == keys_of(Settings)
    assert load_settings(EXAMPLE).model_dump() == Settings().model_dump()
