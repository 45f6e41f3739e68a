"""A Discord-style webhook sink that records posts and can answer 429 with rate-limit headers.

`POST /webhook/{name}` records the JSON body (Discord `content`/`embeds`) and answers 204 with
`X-RateLimit-Limit/Remaining/Reset/Reset-After` headers; `GET /webhook/{name}` lists the posts.
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

from aiohttp import web

_LIMIT = 5
_KEEP = 1000


class WebhookSink:
    """Received webhook posts by name (bounded), plus the throttle switch."""

    def __init__(self) -> None:
        self.posts: dict[str, deque[dict[str, Any]]] = {}
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
        try:
            payload = await request.json()
        except json.JSONDecodeError:
            return web.json_response(
                {"message": "Cannot send an empty message", "code": 50006}, status=400
            )
        if not isinstance(payload, dict) or not (payload.get("content") or payload.get("embeds")):
            return web.json_response(
                {"message": "Cannot send an empty message", "code": 50006}, status=400
            )
        queue = self.posts.setdefault(name, deque(maxlen=_KEEP))
        queue.append(payload)
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

    def routes(self) -> list[web.RouteDef]:
        """Return the routes (absolute paths)."""
        return [
            web.post("/webhook/{name}", self.post),
            web.get("/webhook/{name}", self.list_posts),
            web.post("/_sim/webhook/throttle", self.set_throttle),
        ]
