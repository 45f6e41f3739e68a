"""schemathesis over the api's whole OpenAPI document: no 5xx, no answer the document does not list.

Two bounded runs against a real `livermore-api` process (seeded, 10 examples per operation):
an ordinary user over every operation, then an admin over every operation but those that wait on
a worker (`commands`), reach outside (`symbols/refresh`) or revoke the admin's own token. The
alert and series streams never end, so they are left to their own tests.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from livermore_schema.settings import DatabaseSettings, RedisSettings

from .conftest import ApiProcess, worker_env

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    )
)
STREAMS = r"/stream$|^/ws/"


async def _create_user(
    redis_settings: RedisSettings, pg_settings: DatabaseSettings, *flags: str
) -> str:
    name = f"fuzz-{uuid.uuid4().hex[:8]}"
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "livermore_api", "create-user", name, *flags),
        env=worker_env(redis_settings, pg_settings, None),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode().splitlines()[-1].strip()


async def _fuzz(api: ApiProcess, token: str, exclude: str, workdir: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *(str(Path(sys.executable).with_name("schemathesis")), "run"),
        f"{api.base_url}/api/openapi.json",
        *("-H", f"Authorization: Bearer {token}", "--checks", CHECKS),
        *("--max-examples", "10", "--seed", "15", "--workers", "1", "--no-color"),
        *("--request-timeout", "10", "--exclude-path-regex", exclude),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=workdir,  # schemathesis keeps its example cache in the working directory
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 400)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    found = re.search(r"(\d+) generated, \1 passed", text)
    assert found, text[-2000:]
    return int(found.group(1)), text


def _statuses(log_path: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if '"api.request"' in line:
            status = int(json.loads(line)["status"])
            counts[status] = counts.get(status, 0) + 1
    return counts


@pytest.mark.slow
async def test_schemathesis_finds_no_5xx_and_no_undocumented_answer(
    redis_settings: RedisSettings,
    pg_settings: DatabaseSettings,
    spawn_api: Callable[..., ApiProcess],
    tmp_path: Path,
) -> None:
    api = spawn_api()
    user, admin, _ = await asyncio.gather(
        _create_user(redis_settings, pg_settings),
        _create_user(redis_settings, pg_settings, "--admin"),
        api.wait_ready(60),
    )
    as_user, _ = await _fuzz(api, user, STREAMS, tmp_path)
    as_admin, _ = await _fuzz(
        api, admin, rf"{STREAMS}|/commands$|/symbols/refresh$|^/api/tokens/", tmp_path
    )
    statuses = _statuses(api.log_path)
    requests = sum(statuses.values())
    print(f"schemathesis: {as_user + as_admin} cases, {requests} requests, statuses {statuses}")
    assert requests >= as_user + as_admin
    assert [code for code in statuses if code >= 500] == []
