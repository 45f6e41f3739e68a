from __future__ import annotations

import socket

import pytest

from livermore_demo.config import DEMO_EXCHANGES, child_env, parse_config
from livermore_demo.errors import BadOptionError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIVERMORE_REDIS_DB", "LIVERMORE_DATABASE_NAME", "LIVERMORE_REDIS_CLUSTER"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_use_dedicated_stores_and_consecutive_ports() -> None:
    config = parse_config([])
    assert (config.sim_port, config.api_port) == (8790, 8791)
    assert config.database.name == "livermore_demo"
    assert config.redis.db == 15
    assert config.admin_url == "http://127.0.0.1:8791/admin"
    assert config.duration_s is None
    assert DEMO_EXCHANGES == ("coinbase", "binance")


def test_options_are_applied() -> None:
    argv = "--port-base 9100 --speed 120 --duration 5 --database demo_x --redis-db 3"
    config = parse_config([*argv.split(), "--symbols", "btc", "eth"])
    assert (config.sim_port, config.api_port) == (9100, 9101)
    assert config.speed == 120.0
    assert config.duration_s == 5.0
    assert config.database.name == "demo_x"
    assert config.redis.db == 3
    assert config.symbols == ("BTC", "ETH")


def test_port_base_zero_picks_two_distinct_free_ports() -> None:
    config = parse_config(["--port-base", "0"])
    assert config.sim_port != config.api_port
    for port in (config.sim_port, config.api_port):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--port-base", "80"], "--port-base"),
        (["--speed", "0"], "--speed"),
        (["--duration", "-1"], "--duration"),
        (["--redis-db", "16"], "--redis-db"),
        (["--database", "bad-name;"], "--database"),
        (["--startup-timeout", "0"], "--startup-timeout"),
    ],
)
def test_bad_options_are_rejected(argv: list[str], fragment: str) -> None:
    with pytest.raises(BadOptionError, match=fragment):
        parse_config(argv)


def test_refuses_the_redis_db_a_trader_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVERMORE_REDIS_DB", "15")
    with pytest.raises(BadOptionError, match="flushes"):
        parse_config([])
    assert parse_config(["--redis-db", "14"]).redis.db == 14


def test_refuses_the_database_a_trader_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVERMORE_DATABASE_NAME", "livermore_demo")
    with pytest.raises(BadOptionError, match="LIVERMORE_DATABASE_NAME"):
        parse_config([])


def test_refuses_redis_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVERMORE_REDIS_CLUSTER", "true")
    with pytest.raises(BadOptionError, match="single Redis node"):
        parse_config([])


def test_invalid_setting_is_one_line_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVERMORE_REDIS_PORT", "not-a-port-s3cret")
    with pytest.raises(BadOptionError) as info:
        parse_config([])
    assert "LIVERMORE_REDIS_PORT" in str(info.value)
    assert "s3cret" not in str(info.value)
    assert "\n" not in str(info.value)


def test_child_env_points_every_child_at_the_demo_stores_and_the_simulator() -> None:
    config = parse_config(["--database", "demo_env", "--redis-db", "7"])
    base = {"PATH": "/bin", "LIVERMORE_SYSTEM_USER": "alice", "LIVERMORE_DATABASE_NAME": "prod"}
    overrides = {"LIVERMORE_COINBASE_WS_URL": "ws://127.0.0.1:1/coinbase/ws"}
    env = child_env(base, config, overrides)
    assert env["PATH"] == "/bin"
    assert env["LIVERMORE_DATABASE_NAME"] == "demo_env"
    assert env["LIVERMORE_REDIS_DB"] == "7"
    assert env["LIVERMORE_COINBASE_WS_URL"] == "ws://127.0.0.1:1/coinbase/ws"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert "LIVERMORE_SYSTEM_USER" not in env
    assert base["LIVERMORE_DATABASE_NAME"] == "prod"  # the caller's mapping is untouched
