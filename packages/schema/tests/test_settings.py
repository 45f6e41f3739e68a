from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from livermore_schema.enums import ExchangeName
from livermore_schema.settings import (
    ApiSettings,
    CacheSettings,
    DatabaseSettings,
    EndpointSettings,
    LogSettings,
    RedisSettings,
    WorkerSettings,
)

SECRET = "s3cr3t-value-do-not-print"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer environment or .env leaks into these tests."""
    import os

    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("LIVERMORE_")]:
        monkeypatch.delenv(key)


def test_defaults_point_at_localhost() -> None:
    db = DatabaseSettings()
    redis = RedisSettings()
    assert (db.host, db.port, db.user, db.name, db.password) == (
        "127.0.0.1", 5432, "postgres", "livermore", None,
    )  # fmt: skip
    assert (redis.host, redis.port, redis.secret, redis.cluster) == ("127.0.0.1", 6379, None, False)
    assert CacheSettings().legacy_channels is True
    assert CacheSettings().candle_retention == 1000
    assert WorkerSettings().tier1_limit == 100
    assert ApiSettings().port == 8080


def test_env_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVERMORE_DATABASE_HOST", "db.internal")
    monkeypatch.setenv("LIVERMORE_DATABASE_PORT", "6543")
    monkeypatch.setenv("LIVERMORE_DATABASE_NAME", "lm")
    monkeypatch.setenv("LIVERMORE_DATABASE_SSLMODE", "require")
    monkeypatch.setenv("LIVERMORE_REDIS_PORT", "6380")
    monkeypatch.setenv("LIVERMORE_REDIS_CLUSTER", "true")
    monkeypatch.setenv("LIVERMORE_LEGACY_CHANNELS", "false")
    monkeypatch.setenv("LIVERMORE_SYSTEM_USER", "ops")
    monkeypatch.setenv("LIVERMORE_API_PORT", "9000")
    monkeypatch.setenv("LIVERMORE_LOG_JSON", "true")
    monkeypatch.setenv("LIVERMORE_BINANCE_US_WS_URL", "ws://127.0.0.1:9100")
    monkeypatch.setenv("PORT", "1")  # unprefixed variables are ignored

    db = DatabaseSettings()
    assert (db.host, db.port, db.name, db.sslmode) == ("db.internal", 6543, "lm", "require")
    assert RedisSettings().port == 6380 and RedisSettings().cluster is True
    assert CacheSettings().legacy_channels is False
    assert WorkerSettings().system_user == "ops"
    assert ApiSettings().port == 9000
    assert LogSettings().json_output is True
    endpoints = EndpointSettings()
    assert endpoints.ws_url(ExchangeName.BINANCE_US) == "ws://127.0.0.1:9100"
    assert endpoints.ws_url(ExchangeName.BINANCE) is None
    assert endpoints.rest_url(ExchangeName.BINANCE_US) is None


def test_dotenv_is_read_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LIVERMORE_DATABASE_NAME=from_dotenv\n")
    assert DatabaseSettings().name == "from_dotenv"


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVERMORE_REDIS_PORT", "70000")
    with pytest.raises(ValidationError):
        RedisSettings()


def test_cluster_seed_nodes_are_host_port_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVERMORE_REDIS_HOST", "r1.internal")
    monkeypatch.setenv("LIVERMORE_REDIS_CLUSTER_NODES", "r2.internal:7001, r3.internal:7002,")
    redis = RedisSettings()
    assert redis.seeds() == [("r1.internal", 6379), ("r2.internal", 7001), ("r3.internal", 7002)]
    assert redis.describe().startswith("redis r1.internal:6379,r2.internal:7001,r3.internal:7002")
    assert redis.retry_budget_s >= 15, "the default retry budget must outlast a failover"
    for bad in ("redis://r2:7001", "r2.internal", "r2:port", "r2:70000", ":7001"):
        monkeypatch.setenv("LIVERMORE_REDIS_CLUSTER_NODES", bad)
        with pytest.raises(ValidationError):
            RedisSettings()


def test_database_password_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVERMORE_DATABASE_PASSWORD", SECRET)
    db = DatabaseSettings()
    assert isinstance(db.password, SecretStr)
    for text in (
        repr(db),
        str(db),
        db.describe(),
        str(db.url()),
        repr(db.url()),
        db.model_dump_json(),
    ):
        assert SECRET not in text
    assert db.describe() == "postgresql postgres@127.0.0.1:5432/livermore"
    # the URL still carries it for the driver
    assert SECRET in db.url().render_as_string(hide_password=False)
    assert db.url("postgres").database == "postgres"


def test_other_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVERMORE_REDIS_SECRET", SECRET)
    monkeypatch.setenv("LIVERMORE_COINGECKO_API_KEY", SECRET)
    monkeypatch.setenv("LIVERMORE_DISCORD_WEBHOOK_URL", f"https://discord.test/{SECRET}")
    objects = (RedisSettings(), EndpointSettings(), WorkerSettings())
    for obj in objects:
        assert SECRET not in repr(obj) and SECRET not in str(obj)
    redis = objects[0]
    assert SECRET not in redis.describe()
    assert redis.describe() == "redis 127.0.0.1:6379 (db 0)"
    assert redis.secret is not None and redis.secret.get_secret_value() == SECRET
