"""The OpenAPI 3.1 document, generated from the route table and its pydantic models."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from livermore_api.resources import ErrorOut
from livermore_api.routing import Access, Kind, Route

_REF = "#/components/schemas/{model}"
_ERRORS = {
    400: "malformed request (not JSON)",
    401: "missing, unknown or revoked token",
    403: "not allowed for this caller",
    404: "unknown resource (or exchange, user, id named by a parameter), or not the caller's",
    405: "method not allowed on this path (see Allow)",
    408: "the body did not arrive in time",
    409: "conflict with the current state",
    415: "the body is not application/json",
    422: "invalid parameters or body",
    500: "unexpected error (JSON with a request id; never a stack trace)",
    503: "a dependency is unavailable",
}
_KIND_CONTENT = {
    Kind.SSE: (
        "text/event-stream",
        "`event: ready`, then `event: alert` frames (AlertEvent JSON: exchange alerts and "
        "`confluence` alerts, with `local` under `mine=true`)",
    ),
    Kind.WEBSOCKET: (
        "application/json",
        "101 upgrade; frames `{type: ready|alert, alert}` (alert as on the SSE stream)",
    ),
    Kind.STATIC: ("text/html", "an admin page asset"),
    Kind.TEXT: ("text/plain", "Prometheus text exposition format 0.0.4"),
}


def _models(routes: Iterable[Route]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorOut, "serialization"): None}
    for route in routes:
        for model in (route.path_model, route.query_model, route.body_model):
            if model is not None:
                found[(model, "validation")] = None
        if isinstance(route.response_model, type) and issubclass(route.response_model, BaseModel):
            found[(route.response_model, "serialization")] = None
        for other in route.other_success.values():
            found[(other, "serialization")] = None
    return list(found)


def _parameters(
    model: type[BaseModel] | None, where: str, defs: dict[str, Any], refs: dict[Any, Any]
) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = defs[refs[(model, "validation")]["$ref"].rsplit("/", 1)[-1]]
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": {k: v for k, v in prop.items() if k != "title"},
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _error_statuses(route: Route) -> list[int]:
    statuses = [500]
    if route.access is not Access.PUBLIC:
        statuses += [401, 503]
    if route.access in (Access.OWNER, Access.ACCOUNT, Access.ADMIN):
        statuses.append(403)
    if route.path_model or route.query_model or route.body_model:
        statuses += [404, 422]  # any exchange, user or id a parameter names may be unknown
    if route.body_model is not None:
        statuses += [400, 408, 415]
    statuses.extend(code for code in route.responses if code >= 400)
    return sorted(set(statuses))


def _success(route: Route, refs: dict[Any, Any]) -> dict[str, Any]:
    description = route.responses.get(route.status, "success")
    if route.kind in _KIND_CONTENT:
        media, text = _KIND_CONTENT[route.kind]
        text = route.responses.get(route.status, text)
        return {"description": text, "content": {media: {"schema": {"type": "string"}}}}
    if route.response_model is None:
        return {"description": description}
    schema = refs[(route.response_model, "serialization")]
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(route: Route, defs: dict[str, Any], refs: dict[Any, Any]) -> dict[str, Any]:
    error_ref = refs[(ErrorOut, "serialization")]
    responses: dict[str, Any] = {str(route.status): _success(route, refs)}
    for code, model in route.other_success.items():
        responses[str(code)] = {
            "description": route.responses.get(code, "success"),
            "content": {"application/json": {"schema": refs[(model, "serialization")]}},
        }
    for code in _error_statuses(route):
        text = route.responses.get(code, _ERRORS.get(code, "error"))
        responses[str(code)] = {
            "description": text,
            "content": {"application/json": {"schema": error_ref}},
        }
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "x-access": route.access.value,
        "parameters": _parameters(route.path_model, "path", defs, refs)
        + _parameters(route.query_model, "query", defs, refs),
        "responses": responses,
        "security": [] if route.access is Access.PUBLIC else [{"bearerAuth": []}],
    }
    if route.body_model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(route.body_model, "validation")]}},
        }
    return operation


def build_openapi(routes: Sequence[Route]) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document describing exactly `routes`."""
    refs, top = models_json_schema(_models(routes), ref_template=_REF)
    defs: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, defs, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Livermore API",
            "version": "0.1.0",
            "description": (
                "Admin API of Livermore. Every route but /health (and the admin page's static "
                "files) needs `Authorization: Bearer <token>`; the alert streams also accept "
                "`?token=` because browsers cannot set headers on EventSource/WebSocket. Errors "
                'are `{"error": {"code", "message", "details"}}`.\n\n'
                "Alerts name their `asset` (the CoinGecko id of the symbol, else its upper-case "
                "base currency) and `quote`, so a signal on one exchange maps to a symbol on "
                "another. `asset=` (ids or base currencies: `bitcoin`, `BTC`) filters alert "
                "history and the live streams; `mine=true` keeps the alerts, from any exchange, "
                "for the assets of the caller's watchlists and positions, each with `local`: the "
                "caller's own symbols for that asset (`[{exchange, symbol}]`). When one asset "
                "fires the same kind of signal (any level, or one reversal) in the same direction "
                "on two or more exchanges within one bar of its timeframe, the api publishes one "
                "`confluence` alert on `channel:alerts:confluence` naming every venue in "
                "`venues`; the streams carry it too (it passes an `exchanges` filter naming any "
                "of its venues)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
