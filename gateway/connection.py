"""One client WebSocket on this gateway, and the way frames reach it.

Frames are queued, never awaited by the sender: `send` puts the text in a
bounded queue and returns at once; one writer task per connection drains it.

Slow-consumer policy: a connection whose queue is full (it has not read
`send_queue_frames` frames) is closed with code 1013 ("try again later").
Its app reconnects and registers again, getting a fresh state and the chat
history; the gateway's memory per connection stays bounded.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import structlog
from starlette.websockets import WebSocket, WebSocketState

from gateway.auth import Claims

log = structlog.get_logger("gateway.connection")

CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013

_ids = itertools.count(1)


@dataclass(eq=False)
class Connection:
    websocket: WebSocket
    queue_size: int = 1024
    id: int = field(default_factory=lambda: next(_ids))
    session_id: str | None = None  # set by `register`
    claims: Claims | None = None  # set by a valid token
    is_admin: bool = False  # set by `register_admin` with an admin token
    watching: str | None = None  # the stream this connection watches
    follows_sole_stream: bool = False  # an old app: watch whichever single stream is live
    counted_session: str | None = None  # the session the hub counts as a viewer for `watching`
    protocol: int = 1  # 2: stream events arrive in batch frames
    closed: bool = False
    _queue: asyncio.Queue[str | None] = field(init=False)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(self.queue_size)

    @property
    def user_id(self) -> str | None:
        return self.claims.user_id if self.claims else None

    @property
    def viewer_key(self) -> str | None:
        """Who likes, when this connection taps like: the verified user id when
        logged in (once per user), else the session id it registered with."""
        return self.user_id or self.session_id

    def send(self, text: str) -> bool:
        """Queue a frame. False if the connection is closed or was just closed
        for being too slow."""
        if self.closed:
            return False
        try:
            self._queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            log.warning("slow_consumer_closed", conn=self.id, queued=self.queue_size)
            self.close(CLOSE_TRY_AGAIN_LATER, "too slow: reconnect to catch up")
            return False

    def close(self, code: int = CLOSE_GOING_AWAY, reason: str = "") -> None:
        """Close after what is already queued has been written... unless the
        queue is full, then at once."""
        if self.closed:
            return
        self.closed = True
        self._close = (code, reason)
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            self._drain()
            self._queue.put_nowait(None)

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def run_writer(self) -> None:
        """Write queued frames until closed. Run as one task per connection."""
        ws = self.websocket
        try:
            while True:
                text = await self._queue.get()
                if text is None:
                    break
                await ws.send_text(text)
        except Exception as e:  # the peer went away: nothing more to write
            log.debug("writer_ended", conn=self.id, error=repr(e))
            self.closed = True
            return
        code, reason = getattr(self, "_close", (CLOSE_GOING_AWAY, ""))
        if ws.application_state == WebSocketState.CONNECTED:
            try:
                await ws.close(code, reason)
            except Exception:
                pass
