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
"""

from __future__ import annotations

from websockets.frames import Close, CloseCode, Frame, Opcode
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

EXTENSION = "wrencos.raw"


def text_frame(payload: str | bytes) -> bytes:
    """The bytes of one unmasked, final text frame carrying `payload`."""
    data = payload.encode() if isinstance(payload, str) else payload
    return Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])


class RawWriter:
    """One connection's transport, for writing pre-framed bytes straight to it."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: "FanoutWebSocketProtocol") -> None:
        self._protocol = protocol

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
    def handle_connect(self, event: object) -> None:
        super().handle_connect(event)  # type: ignore[arg-type]
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = RawWriter(self)
