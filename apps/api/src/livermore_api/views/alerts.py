"""Alert history with filters and paging."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from livermore_api.errors import ValidationFailedError
from livermore_api.models import AlertQuery
from livermore_api.resources import AlertOut
from livermore_api.routing import json_response, query_of
from livermore_api.views.common import resolve_exchange, session
from livermore_api.views.selection import alert_selection
from livermore_exchange_core.alerts.local import AlertSelection, Holdings
from livermore_schema.tables import AlertHistory, Exchange


def _out(alert: AlertHistory, exchange_name: str, holdings: Holdings | None) -> AlertOut:
    assert alert.id is not None
    details = alert.details or {}
    local = None
    if holdings is not None and alert.asset is not None:
        local = list(holdings.get(alert.asset, ()))
    return AlertOut(
        id=alert.id,
        uid=alert.uid,
        exchange_id=alert.exchange_id,
        exchange=exchange_name,
        symbol=alert.symbol,
        timeframe=alert.timeframe,
        alert_type=alert.alert_type,
        trigger_label=alert.trigger_label,
        trigger_value=alert.trigger_value,
        price=alert.price,
        triggered_at=alert.triggered_at,
        direction=details.get("direction"),
        delayed=bool(details.get("delayed", False)),
        details=alert.details,
        notification_sent=alert.notification_sent,
        asset=alert.asset,
        quote=alert.quote,
        local=local,
    )


def _asset_filters(selection: AlertSelection) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if selection.assets is not None:
        where.append(col(AlertHistory.asset).in_(sorted(selection.assets)))
    if selection.holdings is not None:
        where.append(col(AlertHistory.asset).in_(sorted(selection.holdings)))
    return where


async def list_alerts(request: web.Request) -> web.StreamResponse:
    """Page through stored alerts, newest first, filtered by exchange, symbol, time and asset.

    `mine=true`: the caller's assets from any exchange, each alert with their `local` symbols.
    """
    query = query_of(request, AlertQuery)
    for bound in (query.since, query.until):
        if bound is not None and bound.utcoffset() is None:
            raise ValidationFailedError("since and until need a timezone (e.g. Z or +00:00)")
    if query.since and query.until and query.since > query.until:
        raise ValidationFailedError("since is after until")
    selection = await alert_selection(request, None, query.asset, mine=query.mine)
    where = _asset_filters(selection)
    async with session(request) as db:
        if query.exchange is not None:
            exchange = await resolve_exchange(db, query.exchange)
            where.append(col(AlertHistory.exchange_id) == exchange.id)
        if query.symbol is not None:
            where.append(col(AlertHistory.symbol) == query.symbol)
        if query.timeframe is not None:
            where.append(col(AlertHistory.timeframe) == query.timeframe.value)
        if query.since is not None:
            where.append(col(AlertHistory.triggered_at) >= query.since)
        if query.until is not None:
            where.append(col(AlertHistory.triggered_at) <= query.until)
        total = (await db.exec(select(func.count()).select_from(AlertHistory).where(*where))).one()
        rows = await db.exec(
            select(AlertHistory, col(Exchange.name))
            .join(Exchange, col(Exchange.id) == col(AlertHistory.exchange_id))
            .where(*where)
            .order_by(col(AlertHistory.triggered_at).desc(), col(AlertHistory.id).desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        items = [
            _out(alert, name, selection.holdings).model_dump(mode="json")
            for alert, name in rows.all()
        ]
    return json_response(
        {"items": items, "total": total, "limit": query.limit, "offset": query.offset}
    )
