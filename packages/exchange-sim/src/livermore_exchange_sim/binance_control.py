"""Binance WebSocket control messages (SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, *_PROPERTY).

Error replies follow the recorded wire shape `{"error":{"code":2,"msg":"..."},"id":2}`
(ctubio/Krypto-trading-bot#1121); the inner object is the documented `{"code","msg"}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livermore_exchange_sim.binance_wire import StreamName, parse_stream_name

_ID_RE = re.compile(r"^[A-Za-z0-9]{1,36}$")
_MAX_ID = 2**63 - 1
_METHODS = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"

RequestId = int | str | None


class ControlError(Exception):
    """A control message the server answers with an error object."""

    def __init__(self, code: int, msg: str, request_id: RequestId = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.request_id = request_id


@dataclass(slots=True)
class StreamSet:
    """The streams one connection is subscribed to, in subscription order, and its properties."""

    max_streams: int
    combined: bool
    streams: dict[str, StreamName] = field(default_factory=dict)
    on_subscribe: Callable[[StreamName], None] | None = None
    is_listed: Callable[[str], bool] | None = None
    """Whether the venue lists a symbol; a SUBSCRIBE naming one it does not is refused whole."""

    def add(self, names: list[str]) -> None:
        """Subscribe to `names`; raise ControlError on an unknown stream or past the limit."""
        parsed = [_parse(name) for name in names]
        listed = self.is_listed
        if listed is not None and not all(listed(p.symbol.upper()) for p in parsed):
            raise ControlError(2, "Invalid request: invalid stream")
        fresh = {p.name for p in parsed} - self.streams.keys()
        if len(self.streams) + len(fresh) > self.max_streams:
            raise ControlError(2, f"Invalid request: too many streams (max {self.max_streams})")
        for stream in parsed:
            if stream.name not in self.streams:
                self.streams[stream.name] = stream
                if self.on_subscribe is not None:
                    self.on_subscribe(stream)

    def remove(self, names: list[str]) -> None:
        """Unsubscribe from `names` (unknown names are ignored, as on Binance)."""
        for name in names:
            self.streams.pop(name, None)


def _parse(name: str) -> StreamName:
    stream = parse_stream_name(name) if isinstance(name, str) else None
    if stream is None:
        raise ControlError(2, "Invalid request: invalid stream")
    return stream


def _string_params(message: dict[str, Any]) -> list[str]:
    params = message.get("params", [])
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise ControlError(2, "Invalid request: invalid stream")
    return params


def _subscribe(streams: StreamSet, message: dict[str, Any]) -> Any:
    streams.add(_string_params(message))
    return None


def _unsubscribe(streams: StreamSet, message: dict[str, Any]) -> Any:
    streams.remove(_string_params(message))
    return None


def _list(streams: StreamSet, message: dict[str, Any]) -> Any:
    return list(streams.streams)


def _property_name(message: dict[str, Any]) -> str:
    params = message.get("params")
    if not isinstance(params, list) or not params or not isinstance(params[0], str):
        raise ControlError(2, "Invalid request: property name must be a string")
    if params[0] != "combined":
        raise ControlError(0, "Unknown property")
    return params[0]


def _set_property(streams: StreamSet, message: dict[str, Any]) -> Any:
    _property_name(message)
    params = message["params"]
    if len(params) != 2 or not isinstance(params[1], bool):
        raise ControlError(1, "Invalid value type: expected Boolean")
    streams.combined = params[1]
    return None


def _get_property(streams: StreamSet, message: dict[str, Any]) -> Any:
    _property_name(message)
    return streams.combined


_HANDLERS: dict[str, Callable[[StreamSet, dict[str, Any]], Any]] = {
    "SUBSCRIBE": _subscribe,
    "UNSUBSCRIBE": _unsubscribe,
    "LIST_SUBSCRIPTIONS": _list,
    "SET_PROPERTY": _set_property,
    "GET_PROPERTY": _get_property,
}


def _request_id(message: dict[str, Any]) -> RequestId:
    request_id = message.get("id")
    if request_id is None:
        return None
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        if 0 <= request_id <= _MAX_ID:
            return request_id
    elif isinstance(request_id, str) and _ID_RE.match(request_id):
        return request_id
    raise ControlError(2, "Invalid request: request ID must be an unsigned integer")


def handle_control(streams: StreamSet, text: str) -> dict[str, Any]:
    """Apply one client text frame to `streams` and return the reply to send."""
    request_id: RequestId = None
    try:
        try:
            message = json.loads(text)
        except ValueError as error:
            raise ControlError(3, f"Invalid JSON: {error}") from None
        if not isinstance(message, dict):
            raise ControlError(2, "Invalid request: expected an object")
        request_id = _request_id(message)
        method = message.get("method")
        if not isinstance(method, str):
            raise ControlError(2, "Invalid request: missing field `method`")
        handler = _HANDLERS.get(method)
        if handler is None:
            raise ControlError(
                2, f"Invalid request: unknown variant `{method}`, expected one of {_METHODS}"
            )
        return {"result": handler(streams, message), "id": request_id}
    except ControlError as error:
        return {"error": {"code": error.code, "msg": error.msg}, "id": request_id}
