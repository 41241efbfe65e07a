import json
import logging

import pytest
import structlog

from shared.config import ConfigError, load_settings
from shared.logs import configure_logging, register_secret


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("KHV_") or name in {"REDIS_URL", "DATABASE_URL", "DASHBOARD_TOKEN"}:
            monkeypatch.delenv(name)


def test_environment_wins_over_the_file(tmp_path, monkeypatch):
    config = tmp_path / "s.yaml"
    config.write_text("bus:\n  shards: 16\n  batch: 64\nredis_url: redis://file:6379/0\n")
    monkeypatch.setenv("KHV_BUS__SHARDS", "4")
    monkeypatch.setenv("REDIS_URL", "redis://env:6379/0")
    settings = load_settings(config)
    assert settings.bus.shards == 4
    assert settings.bus.batch == 64
    assert settings.redis_url == "redis://env:6379/0"


def test_kalshi_urls_follow_the_environment(monkeypatch):
    monkeypatch.setenv("KHV_KALSHI__ENV", "demo")
    assert "demo" in load_settings().kalshi.rest_url
    monkeypatch.setenv("KHV_KALSHI__REST_URL", "http://sim:8100/trade-api/v2")
    assert load_settings().kalshi.rest_url == "http://sim:8100/trade-api/v2"


def test_secrets_come_from_a_secrets_directory_and_are_never_shown(tmp_path, monkeypatch):
    (tmp_path / "dashboard_token").write_text("tok-from-file")
    monkeypatch.setenv("KHV_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.dashboard_token is not None
    assert settings.dashboard_token.get_secret_value() == "tok-from-file"
    assert "tok-from-file" not in repr(settings) + str(settings.model_dump())


def test_malformed_yaml_is_one_line(tmp_path):
    config = tmp_path / "s.yaml"
    config.write_text("bus: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert "\n" not in str(info.value)


def test_logs_are_json_lines_without_secrets(capsys):
    configure_logging("unit", "INFO", "json")
    register_secret("hunter2-secret")
    register_secret("short")
    log = structlog.get_logger("t")
    log.info("connecting", url="redis://x", note="key hunter2-secret here", token="abc")
    logging.getLogger("library").warning("lib says hunter2-secret")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert lines[0]["service"] == "unit"
    assert lines[0]["event"] == "connecting"
    assert lines[0]["note"] == "key *** here"
    assert lines[0]["token"] == "***"
    assert lines[1]["event"] == "lib says ***"
    logging.getLogger("library").warning("retry", extra={"path": "/x", "why": "hunter2-secret"})
    extra = json.loads(capsys.readouterr().err)
    assert (extra["event"], extra["path"], extra["why"]) == ("retry", "/x", "***")
    log.info("a short word stays")
    assert "short word" in capsys.readouterr().err


def test_empty_secrets_count_as_unset(tmp_path, monkeypatch):
    (tmp_path / "kalshi_key_id").write_text("")
    monkeypatch.setenv("KHV_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("DASHBOARD_TOKEN", "  ")
    settings = load_settings()
    assert settings.kalshi_key_id is None
    assert settings.dashboard_token is None
