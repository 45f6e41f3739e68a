"""`create_app`: the aiohttp application with its resources, middlewares and routes."""

from __future__ import annotations

from aiohttp import web

from livermore_api import contexts, keys
from livermore_api.config import ApiConfig
from livermore_api.middlewares import error_middleware
from livermore_api.routes import ROUTES
from livermore_api.routing import ROUTE_TABLE, Kind, wrap


def create_app(config: ApiConfig) -> web.Application:
    """Return the api application; resources open at startup and close at cleanup."""
    app = web.Application(middlewares=[error_middleware])
    app[keys.CONFIG] = config
    app[ROUTE_TABLE] = ROUTES
    app.cleanup_ctx.extend(
        [contexts.database_ctx, contexts.redis_ctx, contexts.http_ctx, contexts.streams_ctx]
    )
    app.on_shutdown.append(contexts.close_streams)
    for route in ROUTES:
        if route.method == "GET" and route.kind in (Kind.JSON, Kind.STATIC):
            # HEAD answers like GET without the body; streams have no meaningful HEAD.
            app.router.add_get(route.path, wrap(route), name=route.name, allow_head=True)
        else:
            app.router.add_route(route.method, route.path, wrap(route), name=route.name)
    return app
