"""A Discord-style webhook sink that records posts and can answer 429 with rate-limit headers.

`POST /webhook/{name}` records the JSON body (Discord `content`/`embeds`) and answers 204 with
`X-RateLimit-Limit/Remaining/Reset/Reset-After` headers; `GET /webhook/{name}` lists the posts.
A `multipart/form-data` post (Discord's way to attach files) is recorded as its `payload_json`
part plus `"_files": [{"field", "filename", "content_type", "size"}]`; the bytes themselves are
kept in `WebhookSink.files` (newest `_KEEP`) by (name, post index, field).
`WebhookSink.throttle(count, retry_after_s)` makes the next `count` posts answer 429 with
Discord's `{"message", "retry_after", "global"}` body and a `Retry-After` header (HTTP:
`POST /_sim/webhook/throttle {"count": 1, "retry_after_s": 0.5}`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Any

from aiohttp import BodyPartReader, web

_LIMIT = 5
_KEEP = 1000


class WebhookSink:
    """Received webhook posts by name (bounded), plus the throttle switch."""

    def __init__(self) -> None:
        self.posts: dict[str, deque[dict[str, Any]]] = {}
        self.files: dict[tuple[str, int, str], bytes] = {}
        """Attached file bytes by (webhook name, index of the post since start, form field)."""
        self._count: dict[str, int] = {}
        self._throttle_left = 0
        self._retry_after_s = 1.0
        self._received = asyncio.Event()

    def throttle(self, count: int, retry_after_s: float = 1.0) -> None:
        """Answer the next `count` posts with 429."""
        self._throttle_left = count
        self._retry_after_s = retry_after_s

    def received(self, name: str) -> list[dict[str, Any]]:
        """Return the posts recorded for `name`, oldest first."""
        return list(self.posts.get(name, ()))

    async def wait_for(self, name: str, count: int, within_s: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least `count` posts arrived for `name`; return them."""
        async with asyncio.timeout(within_s):
            while len(self.posts.get(name, ())) < count:
                self._received.clear()
                await self._received.wait()
        return self.received(name)

    async def post(self, request: web.Request) -> web.Response:
        """Record one post (or throttle it)."""
        name = request.match_info["name"]
        if self._throttle_left > 0:
            self._throttle_left -= 1
            body = {
                "message": "You are being rate limited.",
                "retry_after": self._retry_after_s,
                "global": False,
            }
            headers = {
                "Retry-After": str(self._retry_after_s),
                "X-RateLimit-Limit": str(_LIMIT),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": str(self._retry_after_s),
                "X-RateLimit-Scope": "user",
            }
            return web.json_response(body, status=429, headers=headers)
        files: dict[str, bytes] = {}
        try:
            if request.content_type == "multipart/form-data":
                payload, files = await _read_multipart(request)
            else:
                payload = await request.json()
        except (json.JSONDecodeError, ValueError):
            return web.json_response(
                {"message": "Cannot send an empty message", "code": 50006}, status=400
            )
        if not isinstance(payload, dict) or not (payload.get("content") or payload.get("embeds")):
            return web.json_response(
                {"message": "Cannot send an empty message", "code": 50006}, status=400
            )
        queue = self.posts.setdefault(name, deque(maxlen=_KEEP))
        queue.append(payload)
        for part_name, content in files.items():
            self.files[(name, self._count.get(name, 0), part_name)] = content
        while len(self.files) > _KEEP:
            del self.files[next(iter(self.files))]
        self._count[name] = self._count.get(name, 0) + 1
        self._received.set()
        remaining = _LIMIT - 1 - (len(queue) - 1) % _LIMIT
        headers = {
            "X-RateLimit-Limit": str(_LIMIT),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + 2:.3f}",
            "X-RateLimit-Reset-After": "2.000",
            "X-RateLimit-Bucket": f"sim-{name}",
        }
        return web.Response(status=204, headers=headers)

    async def list_posts(self, request: web.Request) -> web.Response:
        """List the recorded posts of one name."""
        return web.json_response(self.received(request.match_info["name"]))

    async def set_throttle(self, request: web.Request) -> web.Response:
        """HTTP switch for `throttle`."""
        body = await request.json()
        self.throttle(int(body.get("count", 1)), float(body.get("retry_after_s", 1.0)))
        return web.json_response({"throttled": self._throttle_left})

    def file(self, name: str, index: int, field: str = "files[0]") -> bytes | None:
        """Return the bytes of a file attached to the `index`-th post to `name`."""
        return self.files.get((name, index, field))

    def routes(self) -> list[web.RouteDef]:
        """Return the routes (absolute paths)."""
        return [
            web.post("/webhook/{name}", self.post),
            web.get("/webhook/{name}", self.list_posts),
            web.post("/_sim/webhook/throttle", self.set_throttle),
        ]


async def _read_multipart(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Return a multipart post's `payload_json` (with a `_files` summary) and its files' bytes."""
    reader = await request.multipart()
    payload: dict[str, Any] | None = None
    files: dict[str, bytes] = {}
    summary: list[dict[str, Any]] = []
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            raise ValueError("nested multipart is not supported")
        content = await part.read(decode=True)
        if part.name == "payload_json":
            payload = json.loads(content)
        else:
            files[part.name] = bytes(content)
            summary.append(
                {
                    "field": part.name,
                    "filename": part.filename,
                    "content_type": part.headers.get("Content-Type"),
                    "size": len(content),
                }
            )
    if not isinstance(payload, dict):
        raise ValueError("a multipart post needs a payload_json object")
    payload["_files"] = summary
    return payload, files
