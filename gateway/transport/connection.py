"""One client WebSocket on this gateway, and the way frames reach it.

Sending never waits. Under the gateway's own server protocol
(`uvicorn_adapter.py`) a frame is written straight to the socket's transport:
a frame shared by many connections is framed once and the same bytes go to
each. Under any other ASGI server, frames go through a bounded queue that one
writer task per connection drains.

Slow-consumer policy: a connection that has more than `max_buffered_bytes`
written but not yet taken by the network (or, under another server,
`queue_size` frames queued) is closed with code 1013 ("try again later").
Its app reconnects and registers again (opted-in apps resume from their last
event); nobody else waits for it, and the gateway's memory per connection
stays bounded.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import structlog
from starlette.websockets import WebSocket, WebSocketState

from gateway.security.credentials import Claims
from gateway.transport.uvicorn_adapter import RawSocket, raw_socket, text_frame

log = structlog.get_logger("gateway.transport.connection")

CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013
MAX_BUFFERED_BYTES = 512 * 1024

_ids = itertools.count(1)


@dataclass(eq=False)
class Connection:
    websocket: WebSocket
    queue_size: int = 1024
    max_buffered_bytes: int = MAX_BUFFERED_BYTES
    id: int = field(default_factory=lambda: next(_ids))
    session_id: str | None = None  # set by `register`
    claims: Claims | None = None  # set by a valid token
    is_admin: bool = False  # set by `register_admin` with an admin token
    watching: str | None = None  # the stream this connection watches
    follows_sole_stream: bool = False  # an old app: watch whichever single stream is live
    counted_session: str | None = None  # the session the hub counts as a viewer for `watching`
    protocol: int = 1  # 2: stream events arrive in batch frames
    closed: bool = False
    raw: RawSocket | None = field(init=False, default=None)
    _queue: asyncio.Queue[str | None] | None = field(init=False, default=None)
    _transport: asyncio.WriteTransport | None = field(init=False, default=None)
    _close: tuple[int, str] = field(init=False, default=(CLOSE_GOING_AWAY, ""))

    def __post_init__(self) -> None:
        scope = getattr(self.websocket, "scope", None)  # stand-ins in tests may have none
        self.raw = raw_socket(scope) if isinstance(scope, dict) else None
        if self.raw is None:
            self._queue = asyncio.Queue(self.queue_size)
        else:
            self._transport = self.raw.transport

    @property
    def user_id(self) -> str | None:
        return self.claims.user_id if self.claims else None

    @property
    def viewer_key(self) -> str | None:
        """Who likes, when this connection taps like: the verified user id when
        logged in (once per user), else the session id it registered with."""
        return self.user_id or self.session_id

    def send(self, text: str) -> bool:
        """Send one frame of its own. False if closed (or just closed as too slow)."""
        return self.send_shared(text, None)

    def send_shared(self, text: str, frame: bytes | None) -> bool:
        """Send a frame that others get too: `frame` is `text` already framed
        (by `text_frame`), or None to frame it here."""
        if self.closed:
            return False
        if self.raw is not None:
            return self._write(frame if frame is not None else text_frame(text))
        return self._enqueue(text)

    def send_many(self, texts: list[str], frames: bytes) -> bool:
        """Send several frames in order: `frames` is the concatenation of
        `text_frame(t)` for each text, written at once."""
        if self.closed:
            return False
        if self.raw is not None:
            return self._write(frames)
        return all(self._enqueue(t) for t in texts)

    def _write(self, data: bytes) -> bool:
        # The hot path of fan-out: C calls only, no await.
        transport = self._transport
        if transport is None or transport.is_closing():
            self.closed = True
            return False
        if transport.get_write_buffer_size() > self.max_buffered_bytes:
            self._too_slow()
            return False
        transport.write(data)
        return True

    def _enqueue(self, text: str) -> bool:
        assert self._queue is not None
        try:
            self._queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            self._too_slow()
            return False

    def _too_slow(self) -> None:
        log.warning("slow_consumer_closed", conn=self.id)
        self.close(CLOSE_TRY_AGAIN_LATER, "too slow: reconnect to catch up")

    def close(self, code: int = CLOSE_GOING_AWAY, reason: str = "") -> None:
        """Close the connection: at once under the gateway's protocol, after
        what is queued otherwise (or at once if the queue is full)."""
        if self.closed:
            return
        self.closed = True
        self._close = (code, reason)
        if self.raw is not None:
            self.raw.abort(code, reason)
            return
        assert self._queue is not None
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def run_writer(self) -> None:
        """Write queued frames until closed (only under another ASGI server)."""
        if self._queue is None:
            return
        ws = self.websocket
        try:
            while True:
                text = await self._queue.get()
                if text is None:
                    break
                await ws.send_text(text)
        except Exception as e:  # noqa: BLE001 - the peer went away (any error of the send): nothing more to write
            log.debug("writer_ended", conn=self.id, error=repr(e))
            self.closed = True
            return
        code, reason = self._close
        if ws.application_state == WebSocketState.CONNECTED:
            try:
                await ws.close(code, reason)
            except Exception:  # noqa: BLE001 - closing a socket that may already be gone
                pass
