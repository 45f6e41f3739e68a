"""Health, the caller's identity, the OpenAPI document and the admin page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from aiohttp import web

from livermore_api import keys
from livermore_api.errors import NotFoundError
from livermore_api.metrics import CONTENT_TYPE, METRICS
from livermore_api.models import StaticPath
from livermore_api.openapi import build_openapi
from livermore_api.resources import (
    HealthOut,
    MeOut,
    PublicHealthOut,
    PublicWorkerState,
    WorkerState,
)
from livermore_api.routing import ROUTE_TABLE, json_response, path_of, principal_of
from livermore_api.views.common import (
    all_exchanges,
    commandable_exchange_ids,
    redis_of,
    session,
    worker_states,
)
from livermore_api.views.users import user_out
from livermore_schema.commandline import livermore_version
from livermore_schema.tables import Exchange, User

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
"""The admin page's HTML, JS and CSS."""

API_VERSION = livermore_version("livermore-api")
"""The version `/health` reports (the installed livermore-api distribution)."""

_PROBE_TIMEOUT_S = 3.0
_CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


async def _postgres_ok(request: web.Request) -> list[Exchange] | None:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT_S), session(request) as db:
            return list(await all_exchanges(db))
    except Exception as err:  # any failure means "not healthy"; the reason goes to the log only
        log.warning("api.health_postgres_failed", error=repr(err))
        return None


async def _redis_ok(request: web.Request) -> bool:
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            return bool(await redis_of(request).ping())
    except Exception as err:
        log.warning("api.health_redis_failed", error=repr(err))
        return False


async def _health(request: web.Request) -> tuple[HealthOut, bool]:
    exchanges, redis_ok = await asyncio.gather(_postgres_ok(request), _redis_ok(request))
    workers: dict[str, WorkerState] = {}
    if exchanges is not None and redis_ok:
        states = await worker_states(request, [ex.id for ex in exchanges if ex.id is not None])
        workers = {ex.name: states[ex.id] for ex in exchanges if ex.id is not None}
    healthy = exchanges is not None and redis_ok
    body = HealthOut(
        status="ok" if healthy else "unavailable",
        version=API_VERSION,
        postgres=exchanges is not None,
        redis=redis_ok,
        workers=workers,
    )
    return body, healthy


async def health(request: web.Request) -> web.StreamResponse:
    """Report the stores and each worker's liveness (no details); 503 unless both stores answer."""
    body, healthy = await _health(request)
    public = PublicHealthOut(
        **body.model_dump(exclude={"workers"}),
        workers={
            name: PublicWorkerState(alive=state.alive, state=state.state)
            for name, state in body.workers.items()
        },
    )
    return json_response(public, status=200 if healthy else 503)


async def health_details(request: web.Request) -> web.StreamResponse:
    """Report the stores and each worker with its full status (worker id, error, progress)."""
    body, healthy = await _health(request)
    return json_response(body, status=200 if healthy else 503)


async def me(request: web.Request) -> web.StreamResponse:
    """Return the caller and the exchanges whose workers they may command."""
    principal = principal_of(request)
    async with session(request) as db:
        user = await db.get(User, principal.user_id)
        assert user is not None
        exchanges = await all_exchanges(db)
        allowed = await commandable_exchange_ids(db, principal.user_id)
    names = [ex.name for ex in exchanges if principal.is_admin or ex.id in allowed]
    out = MeOut(
        **user_out(user).model_dump(), token_id=principal.token_id, commandable_exchanges=names
    )
    return json_response(out)


async def openapi(request: web.Request) -> web.StreamResponse:
    """Return the OpenAPI 3 document of every route."""
    routes = request.app[ROUTE_TABLE]
    return json_response(build_openapi(routes))


async def metrics(request: web.Request) -> web.StreamResponse:
    """Return the api's Prometheus metrics, with stream and worker gauges read now."""
    found = request.app[METRICS]
    found.open_streams.set(len(request.app[keys.STREAMS]))
    async with session(request) as db:
        exchanges = list(await all_exchanges(db))
    states = await worker_states(request, [ex.id for ex in exchanges if ex.id is not None])
    for ex in exchanges:
        if ex.id is not None:
            found.worker_alive.labels(ex.name).set(1 if states[ex.id].alive else 0)
    return web.Response(body=found.render(), headers={"Content-Type": CONTENT_TYPE})


def _file(name: str) -> web.FileResponse:
    target = STATIC_DIR / name
    if not target.is_file():
        raise NotFoundError(f"no asset {name}")
    response = web.FileResponse(target)
    response.content_type = _CONTENT_TYPES[target.suffix]
    response.headers["Cache-Control"] = "no-cache"
    return response


async def admin_page(request: web.Request) -> web.StreamResponse:
    """Serve the admin page (it holds no data; everything it shows needs a token)."""
    del request
    return _file("admin.html")


async def chart_page(request: web.Request) -> web.StreamResponse:
    """Serve the chart page (it holds no data; it reads the series with the caller's token)."""
    del request
    return _file("chart.html")


async def docs_page(request: web.Request) -> web.StreamResponse:
    """Serve Swagger UI for `/api/openapi.json` (assets vendored under the admin static files)."""
    del request
    return _file("docs.html")


async def admin_asset(request: web.Request) -> web.StreamResponse:
    """Serve one of the admin page's scripts or stylesheets."""
    return _file(path_of(request, StaticPath).filename)
