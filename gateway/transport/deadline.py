"""`RequestDeadline`: every REST request is answered within a stated time.

A pure ASGI middleware around the whole HTTP app. If the handler has not begun
its answer `seconds` after the request arrived, the handler is cancelled and the
client gets the usual JSON error, 503 with `Retry-After`:

    {"error": "deadline_exceeded", "message": "...", "status": 503}

Guarantees:
- An HTTP request gets the first byte of its answer within `seconds` plus one
  turn of the event loop, whatever the handler waits for. Each dependency has its
  own shorter bound (the database's `timeoutMS`, each actor call's timeout); this
  is the backstop above them all, so no path can hang a client.
- An answer already begun is never cut: a handler that started its response
  finishes it.
- WebSocket and lifespan traffic pass through untouched (they have their own
  register, idle and ping timeouts).

What a 503 from here does not say: whether the work completed. A cancelled
handler stops at its next `await`, but what it had already asked of an actor
goes on there. Every write that can take this long (going live, stopping,
pinning, a flash sale) is idempotent, so the client's retry is safe; a
`creating` order left behind is released by the order sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import error_body

log = structlog.get_logger("gateway.deadline")


class RequestDeadline:
    def __init__(self, app: ASGIApp, seconds: float, retry_after_s: int = 1) -> None:
        self.app = app
        self.seconds = seconds
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_and_note(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, receive, send_and_note))
        try:
            done, _ = await asyncio.wait({handler}, timeout=self.seconds)
            if done or started:
                await handler  # finished, or answering already: let it finish (and raise what it raised)
                return
            handler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await handler
        finally:
            if not handler.done():  # we were cancelled ourselves (the client left, the server stops)
                handler.cancel()
        if started:  # it began answering while it was being cancelled
            return
        log.warning("rest_deadline_exceeded", method=scope.get("method"), path=scope.get("path"), seconds=self.seconds)
        await self._answer_503(send)

    async def _answer_503(self, send: Send) -> None:
        message = (
            f"no answer within {self.seconds:g} s (a dependency is slow or down); try again in "
            f"{self.retry_after_s} s. A write may have been applied: retry an order with the same Idempotency-Key"
        )
        body = json.dumps(error_body(503, message, "deadline_exceeded")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(self.retry_after_s).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
