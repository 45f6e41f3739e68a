"""`create_app`: the aiohttp application with its resources, middlewares and routes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from livermore_api import contexts, keys
from livermore_api.config import ApiConfig
from livermore_api.metrics import METRICS, ApiMetrics, metrics_middleware
from livermore_api.middlewares import add_security_headers, error_middleware
from livermore_api.routes import ROUTES
from livermore_api.routing import ROUTE_TABLE, Kind, wrap


def server_options(config: ApiConfig) -> dict[str, Any]:
    """Options of the HTTP server (`run_app`, `TestServer`) the settings decide."""
    # aiohttp arms the keep-alive timer when a connection opens and closes it if no complete
    # request arrived by then: with a short timer it doubles as the header-read timeout.
    return {"keepalive_timeout": config.api.header_timeout_s}


def create_app(config: ApiConfig) -> web.Application:
    """Return the api application; resources open at startup and close at cleanup."""
    # The error middleware is inside, so the metrics see the status a client really got.
    app = web.Application(middlewares=[metrics_middleware, error_middleware])
    app[keys.CONFIG] = config
    app[METRICS] = ApiMetrics()
    app[ROUTE_TABLE] = ROUTES
    app.cleanup_ctx.extend(
        [
            contexts.database_ctx,
            contexts.redis_ctx,
            contexts.fanout_ctx,
            contexts.http_ctx,
            contexts.confluence_ctx,
            contexts.streams_ctx,
        ]
    )
    app.on_shutdown.append(contexts.close_streams)
    app.on_response_prepare.append(add_security_headers)
    for route in ROUTES:
        if route.method == "GET" and route.kind in (Kind.JSON, Kind.STATIC, Kind.TEXT):
            # HEAD answers like GET without the body; streams have no meaningful HEAD.
            app.router.add_get(route.path, wrap(route), name=route.name, allow_head=True)
        else:
            app.router.add_route(route.method, route.path, wrap(route), name=route.name)
    return app
