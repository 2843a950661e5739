"""Writing the same WebSocket frame to many sockets without re-encoding it.

A server-to-client WebSocket frame is not masked, so the bytes of a text frame
depend only on its payload: encode an event once, frame it once, and write the
identical bytes to every socket (what uWebSockets' publish does). The ASGI
interface cannot do that: each `send` goes through the framework, the server
and the frame encoder again, per connection.

`FanoutWebSocketProtocol` is uvicorn's own WebSocket protocol (websockets'
sans-I/O implementation) that also puts a `RawWriter` for the connection in
the ASGI scope (`scope["extensions"]["wrencos.raw"]`). Everything else (the
handshake, pings, close, receiving) is uvicorn's. Frames written raw are
plain, uncompressed text frames, which are valid whether or not compression
was negotiated.

There is no backpressure: the caller writes to `RawWriter.transport`, which
never waits, checks its write buffer size and closes a connection that falls
too far behind (see `connection.py`).

Inbound, a connection may set `RawWriter.inbound`: a function that handles a
text message at once if it can (a like tap, a chat message) and says whether
it did. It is called straight from `data_received`, only while the ASGI app
waits in `receive` with nothing queued, so every earlier message has been
handled and the order of a connection's messages is kept. A message it
declines goes the ASGI way as usual. A like storm is tens of thousands of
small messages a second: this skips, per message, the queue, a task switch,
and the pause and resume of reading (two `epoll_ctl` calls) that uvicorn does
for each message it queues.
"""

from __future__ import annotations

from typing import Any, Callable

from websockets.frames import Close, CloseCode, Frame, Opcode
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

EXTENSION = "wrencos.raw"


def text_frame(payload: str | bytes) -> bytes:
    """The bytes of one unmasked, final text frame carrying `payload`."""
    data = payload.encode() if isinstance(payload, str) else payload
    return Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])


class RawWriter:
    """One connection's transport, for writing pre-framed bytes straight to it."""

    __slots__ = ("_protocol", "inbound")

    def __init__(self, protocol: "FanoutWebSocketProtocol") -> None:
        self._protocol = protocol
        # text -> handled? Called in order with the app's own reads (see the module doc).
        self.inbound: Callable[[str], bool] | None = None

    @property
    def transport(self) -> object:
        """The socket's transport: write frames to it directly in hot loops."""
        return self._protocol.transport

    def abort(self, code: int, reason: str) -> None:
        """Close now: a close frame, then the transport, dropping what is buffered beyond it."""
        p = self._protocol
        if p.close_sent or p.transport is None or p.transport.is_closing():
            return
        p.close_sent = True
        p.transport.write(Frame(Opcode.CLOSE, Close(CloseCode(code), reason).serialize()).serialize(
            mask=False, extensions=[]))
        p.transport.close()


class FanoutWebSocketProtocol(WebSocketsSansIOProtocol):
    _raw: RawWriter | None = None
    _app_waiting = False  # the app is inside `receive` (with nothing queued, it is suspended there)

    def handle_connect(self, event: object) -> None:
        super().handle_connect(event)  # type: ignore[arg-type]
        scope = getattr(self, "scope", None)
        if scope is not None:
            self._raw = RawWriter(self)
            scope["extensions"][EXTENSION] = self._raw

    def send_receive_event_to_app(self) -> None:
        raw = self._raw
        if (raw is not None and raw.inbound is not None and self._app_waiting and self.curr_msg_data_type == "text"
                and len(self.frames) == 1 and not self.close_sent and self.queue.empty()):
            try:
                text = bytes(self.frames[0]).decode()
            except UnicodeDecodeError:
                pass  # uvicorn's own path closes with 1007
            else:
                if raw.inbound(text):
                    self.frames = []
                    return
        super().send_receive_event_to_app()

    async def receive(self) -> Any:
        self._app_waiting = True
        try:
            return await super().receive()
        finally:
            self._app_waiting = False
