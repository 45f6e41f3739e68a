"""Symbol refresh (admins): rebuild an exchange's `exchange_symbols` via exchange-core."""

from __future__ import annotations

from aiohttp import web

from livermore_api import keys
from livermore_api.errors import ConflictError, UpstreamUnavailableError
from livermore_api.models import ExchangePath
from livermore_api.resources import RefreshOut
from livermore_api.routing import json_response, path_of
from livermore_api.views.common import resolve_exchange, session
from livermore_exchange_core.symbols.coingecko import CoinGeckoClient
from livermore_exchange_core.symbols.refresh import RefreshStatus, SymbolRefresh
from livermore_schema.enums import ExchangeName


async def refresh_symbols(request: web.Request) -> web.StreamResponse:
    """Refresh one exchange's symbols from its product list, 24h volumes and CoinGecko."""
    async with session(request) as db:
        exchange = await resolve_exchange(db, path_of(request, ExchangePath).exchange)
    name = ExchangeName(exchange.name)
    endpoints = request.app[keys.CONFIG].endpoints
    http = request.app[keys.HTTP]
    coingecko = CoinGeckoClient(http, endpoints.coingecko_url, endpoints.coingecko_api_key)
    refresher = SymbolRefresh(request.app[keys.SESSIONS], http, endpoints, coingecko)
    report = await refresher.refresh(name)
    result = report.result(name)
    out = RefreshOut(
        exchange=name.value,
        status=result.status.value,
        listed=result.listed,
        added=result.added,
        updated=result.updated,
        deactivated=result.deactivated,
        error=result.error,
        coingecko_error=report.coingecko_error,
    )
    if result.status is RefreshStatus.SKIPPED:
        raise ConflictError(
            result.error or "not refreshable", code="not_refreshable", details=out.model_dump()
        )
    if result.status is RefreshStatus.FAILED:
        raise UpstreamUnavailableError(
            f"refreshing {name.value} failed: {result.error}", details=out.model_dump()
        )
    return json_response(out)
