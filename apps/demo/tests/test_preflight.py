from __future__ import annotations

import socket

import pytest

from livermore_demo.config import DemoConfig
from livermore_demo.errors import BadOptionError, ServiceUnavailableError
from livermore_demo.preflight import check_ports, check_services, postgres_problem, redis_problem
from livermore_schema.commandline import EXIT_CANNOT_START
from livermore_schema.settings import DatabaseSettings, RedisSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(redis: RedisSettings, database: DatabaseSettings, ports: tuple[int, int]) -> DemoConfig:
    return DemoConfig(
        sim_port=ports[0],
        api_port=ports[1],
        speed=60.0,
        duration_s=None,
        database=database,
        redis=redis,
        seed=7,
        symbols=("BTC",),
        startup_timeout_s=10.0,
        excursion_every_s=60.0,
    )


async def test_reachable_redis_has_no_problem(redis_settings: RedisSettings) -> None:
    assert await redis_problem(redis_settings) is None


async def test_unreachable_redis_is_named_with_its_address() -> None:
    port = free_port()
    problem = await redis_problem(RedisSettings(port=port))
    assert problem == f"Redis at 127.0.0.1:{port} (connection refused)"


def test_missing_demo_database_is_not_a_problem(pg_server_settings: DatabaseSettings) -> None:
    missing = pg_server_settings.model_copy(update={"name": "livermore_demo_never_created"})
    assert postgres_problem(missing) is None
    assert postgres_problem(pg_server_settings) is None


def test_unreachable_postgres_is_named_with_its_address() -> None:
    port = free_port()
    problem = postgres_problem(DatabaseSettings(port=port))
    assert problem is not None
    assert problem.startswith(f"PostgreSQL at 127.0.0.1:{port} (")


async def test_one_line_names_every_missing_service(pg_server_settings: DatabaseSettings) -> None:
    dead_redis = RedisSettings(port=free_port())
    dead_pg = DatabaseSettings(port=free_port())
    ports = (free_port(), free_port())
    with pytest.raises(ServiceUnavailableError) as both:
        await check_services(_config(dead_redis, dead_pg, ports))
    message = str(both.value)
    assert "Redis at" in message and "PostgreSQL at" in message
    assert message.endswith("are not reachable; start them with `make services`")
    assert "\n" not in message
    assert both.value.exit_code == EXIT_CANNOT_START
    with pytest.raises(ServiceUnavailableError, match=r"^Redis at .* is not reachable; start it"):
        await check_services(_config(dead_redis, pg_server_settings, ports))


async def test_services_up_pass(
    redis_settings: RedisSettings, pg_server_settings: DatabaseSettings
) -> None:
    await check_services(_config(redis_settings, pg_server_settings, (1, 2)))


def test_a_taken_port_is_reported_with_the_way_out() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        config = _config(RedisSettings(), DatabaseSettings(), (free_port(), taken))
        with pytest.raises(BadOptionError, match=f"port {taken} for the api is in use"):
            check_ports(config)
    check_ports(_config(RedisSettings(), DatabaseSettings(), (free_port(), free_port())))
