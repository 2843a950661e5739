"""A minimal WebSocket client (RFC 6455) on a raw `asyncio.Protocol`, for the viewers.

Why: a load tester that receives 100,000 frames a second on the same machine as
the server must spend as little CPU per frame as possible. A general client
(the `websockets` library) costs several microseconds per frame in its
generators, queues and futures; this one parses frames straight out of the
bytes `data_received` gets and hands each complete text message to a callback,
synchronously, with the time it was read.

What it supports:

- `ws://` and `wss://` URLs; the HTTP/1.1 Upgrade handshake done by hand with a
  random `Sec-WebSocket-Key`; the response must be `101` with `Upgrade:
  websocket`, `Connection: Upgrade` and the right `Sec-WebSocket-Accept`, and
  must not select an extension or subprotocol (none is offered). Any other
  status raises `InvalidStatus` (with `.status`), anything else wrong
  `HandshakeError`.
- server frames: unmasked (a masked one fails the connection, as the RFC says),
  7-bit, 16-bit and 64-bit lengths, split across reads in any way; fragmented
  messages (continuation frames, control frames between fragments); ping
  (answered with a pong carrying the same payload), pong (ignored), close
  (answered with the same code, then the server closes the TCP connection).
- client frames: text, pong and close, always masked with a fresh random key.
- `max_size`: a message larger than that fails the connection with 1009.

What it does not support: extensions (no permessage-deflate), subprotocols,
binary messages (a binary message fails the connection with 1003), sending
fragmented messages, UTF-8 validation of text payloads (the receiver decides
what to parse), HTTP redirects, proxies, keepalive pings of its own.

A connection fails (`failure` says why, `close_code` is 1006) on a protocol
error or when the message callback raises.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import ssl
from collections.abc import Callable
from time import time_ns
from typing import NamedTuple, cast
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_HEADER_BYTES = 16_384

OnMessage = Callable[[bytes, int], None]
"""`(payload, now_ns)`: one complete text message (UTF-8 bytes) and `time.time_ns()` at its read."""


class HandshakeError(Exception):
    """The server did not complete a valid WebSocket handshake."""


class InvalidStatus(HandshakeError):
    """The server answered the Upgrade request with another status than 101."""

    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status


def accept_key(key: bytes) -> bytes:
    """The `Sec-WebSocket-Accept` value the server must answer for `key`."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def mask_payload(payload: bytes, key: bytes) -> bytes:
    """`payload` XOR the 4-byte `key` repeated (RFC 6455 5.3), as one big-integer XOR."""
    n = len(payload)
    if not n:
        return b""
    k = int.from_bytes((key * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(payload, "little") ^ k).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes, key: bytes | None = None, fin: bool = True) -> bytes:
    """One client frame: FIN, opcode, MASK bit, length (7/16/64-bit), mask key, masked payload."""
    key = os.urandom(4) if key is None else key
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 65536:
        head = bytes((b0, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, 0xFF)) + n.to_bytes(8, "big")
    return head + key + mask_payload(payload, key)


def close_payload(code: int | None, reason: str = "") -> bytes:
    return b"" if code is None else code.to_bytes(2, "big") + reason.encode()[:123]


class FrameParser:
    """Server-to-client frames out of a byte stream, whatever the read boundaries.

    `feed(data, now)` parses every complete frame: text messages go to
    `on_message(payload, now)`, control frames to `on_control(opcode,
    payload)`. A protocol error raises `ProtocolError` (with the close code).
    Pure: no I/O, so it is tested on its own.
    """

    __slots__ = (
        "_chunks",
        "_frag",
        "_frag_op",
        "_frag_size",
        "_have",
        "_need",
        "max_size",
        "on_control",
        "on_message",
    )

    def __init__(self, on_message: OnMessage, on_control: Callable[[int, bytes], None], max_size: int = 2**24) -> None:
        self.on_message = on_message
        self.on_control = on_control
        self.max_size = max_size
        self._chunks: list[bytes] = []  # an incomplete frame's bytes so far
        self._have = 0  # their length
        self._need = 0  # bytes needed before parsing can go on
        self._frag: list[bytes] | None = None  # a fragmented message's payloads so far
        self._frag_size = 0
        self._frag_op = OP_TEXT

    def feed(self, data: bytes, now: int) -> None:
        if self._chunks:  # only join once the frame waited for is complete (no quadratic copying)
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return
            data = b"".join(self._chunks)
            self._chunks = []
        n = len(data)
        pos = 0
        on_message = self.on_message
        while True:
            avail = n - pos
            if avail < 2:
                need = 2
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if avail < 4:
                    need = 4
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            else:
                if avail < 10:
                    need = 10
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            if b1 & 0x80:
                raise ProtocolError(1002, "masked frame from the server")
            if length > self.max_size:
                raise ProtocolError(1009, "message too big")
            end = start + length
            if end > n:
                need = end - pos
                break
            if b0 == 0x81 and self._frag is None:  # the common case: a whole text message in one frame
                on_message(data[start:end], now)
            else:
                self._frame(b0, data[start:end], now)
            pos = end
        if pos < n:
            rest = data[pos:] if pos else data
            self._chunks = [rest]
            self._have = len(rest)
            self._need = need
        else:
            self._have = self._need = 0

    def _frame(self, b0: int, payload: bytes, now: int) -> None:
        if b0 & 0x70:
            raise ProtocolError(1002, "reserved bits set (no extension was negotiated)")
        fin = b0 & 0x80
        op = b0 & 0x0F
        if op >= 0x8:
            if not fin or len(payload) > 125:
                raise ProtocolError(1002, "fragmented or oversized control frame")
            if op not in (OP_CLOSE, OP_PING, OP_PONG):
                raise ProtocolError(1002, f"unknown opcode {op}")
            self.on_control(op, payload)
            return
        if op == OP_CONT:
            if self._frag is None:
                raise ProtocolError(1002, "continuation frame without a message")
            self._frag.append(payload)
            self._frag_size += len(payload)
            if self._frag_size > self.max_size:
                raise ProtocolError(1009, "message too big")
            if fin:
                message, op = b"".join(self._frag), self._frag_op
                self._frag = None
                self._deliver(op, message, now)
            return
        if op not in (OP_TEXT, OP_BINARY):
            raise ProtocolError(1002, f"unknown opcode {op}")
        if self._frag is not None:
            raise ProtocolError(1002, "new message before the last fragment")
        if fin:
            self._deliver(op, payload, now)
        else:
            self._frag, self._frag_size, self._frag_op = [payload], len(payload), op

    def _deliver(self, op: int, message: bytes, now: int) -> None:
        if op == OP_BINARY:
            raise ProtocolError(1003, "binary message (only text is supported)")
        self.on_message(message, now)


class ProtocolError(Exception):
    """The server broke the protocol; `code` is the close code to fail the connection with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class WsClient(asyncio.Protocol):
    """One client connection. Create it with `connect()`.

    - `closed`: a future done when the TCP connection is gone.
    - `close_code`: None while open; then the code of the server's close frame
      (1005 if it had none), or 1006 if the connection ended without one.
    - `failure`: why this side failed the connection (protocol error, callback
      exception), else None.
    """

    def __init__(
        self, on_message: OnMessage, key: bytes, request: bytes, max_size: int = 2**24, close_timeout: float = 2.0
    ) -> None:
        self.parser = FrameParser(on_message, self._control, max_size)
        self.key = key
        self.request = request
        self.close_timeout = close_timeout
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.close_code: int | None = None
        self.close_reason = ""
        self.failure: str | None = None
        self._close_rcvd: int | None = None
        self._close_sent = False
        self._head = b""
        self._feed: Callable[[bytes, int], None] = self._handshake
        self._abort_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_connection hands a stream transport; the base class's signature names none of its writes.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self._feed(data, time_ns())
        except ProtocolError as e:
            self.fail(e.code, f"protocol error ({e})")
        except HandshakeError as e:
            if not self.opened.done():
                self.opened.set_exception(e)
            self.abort()
        except Exception as e:  # noqa: BLE001 - the message callback failed: end this connection
            self.fail(1011, type(e).__name__)

    def eof_received(self) -> bool | None:
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        if self._close_rcvd is not None:
            self.close_code = self._close_rcvd
        else:
            self.close_code = 1006
        if not self.opened.done():
            self.opened.set_exception(HandshakeError("connection closed during the handshake") if exc is None else exc)
        if not self.closed.done():
            self.closed.set_result(None)
        self._feed = self._discard

    # ------------------------------------------------------------ receiving

    def _handshake(self, data: bytes, now: int) -> None:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HEADER_BYTES:
                raise HandshakeError("response headers too long")
            return
        head, rest = self._head[:end].decode("latin-1"), self._head[end + 4 :]
        self._head = b""
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HandshakeError(f"bad status line {lines[0][:80]!r}")
        status = int(parts[1])
        if status != 101:
            raise InvalidStatus(status, parts[2] if len(parts) > 2 else "")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise HandshakeError(f"bad header line {line[:80]!r}")
            name = name.strip().lower()
            headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
        if headers.get("upgrade", "").lower() != "websocket":
            raise HandshakeError("no Upgrade: websocket")
        if "upgrade" not in [t.strip() for t in headers.get("connection", "").lower().split(",")]:
            raise HandshakeError("no Connection: Upgrade")
        if headers.get("sec-websocket-accept", "").encode() != accept_key(self.key):
            raise HandshakeError("wrong Sec-WebSocket-Accept")
        if headers.get("sec-websocket-extensions") or headers.get("sec-websocket-protocol"):
            raise HandshakeError("the server selected an extension or subprotocol that was not offered")
        self._feed = self.parser.feed
        if not self.opened.done():
            self.opened.set_result(None)
        if rest:
            self.parser.feed(rest, now)

    def _discard(self, data: bytes, now: int) -> None:
        pass

    def _control(self, op: int, payload: bytes) -> None:
        if op == OP_PING:
            if not self._close_sent:
                self._write(OP_PONG, payload)
        elif op == OP_CLOSE:
            if len(payload) == 1:
                raise ProtocolError(1002, "close frame with a 1-byte payload")
            code = int.from_bytes(payload[:2], "big") if payload else 1005
            self._close_rcvd = code
            self.close_reason = payload[2:].decode("utf-8", "replace")
            if not self._close_sent:
                self._close_sent = True
                self._write(OP_CLOSE, payload[:2])
            self._feed = self._discard  # nothing may follow a close frame
            self._arm_abort()
        # pong: nothing to do (no pings are sent)

    # ------------------------------------------------------------ sending and closing

    def _write(self, op: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(op, payload))

    def send_text(self, text: str | bytes) -> bool:
        """Send one masked text frame; False if the connection is closing or closed."""
        if self._close_sent or self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(encode_frame(OP_TEXT, text.encode() if isinstance(text, str) else text))
        return True

    def start_close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once); the server answers and closes the TCP connection."""
        if not self._close_sent:
            self._close_sent = True
            self._write(OP_CLOSE, close_payload(code, reason))
        self._arm_abort()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The closing handshake, waiting at most `close_timeout` (then the TCP connection is cut)."""
        self.start_close(code, reason)
        await asyncio.shield(self.closed)

    def fail(self, code: int, why: str) -> None:
        """Fail the connection: record why, send a close frame if possible, cut the TCP connection."""
        if self.failure is None:
            self.failure = why
        if not self._close_sent:
            self._close_sent = True
            self._write(OP_CLOSE, close_payload(code))
        self._feed = self._discard
        self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _arm_abort(self) -> None:
        if self._abort_timer is None and not self.closed.done():
            self._abort_timer = asyncio.get_running_loop().call_later(self.close_timeout, self.abort)


class Upgrade(NamedTuple):
    """Where to connect for a WebSocket URL, and the HTTP Upgrade request to send there."""

    host: str
    port: int
    secure: bool  # wss://: TLS, checked against the system's certificates
    request: bytes


def upgrade_request(url: str, key: bytes) -> Upgrade:
    """The connection and the Upgrade request for a ws:// or wss:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL: {url!r}")
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        host_header += f":{port}"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
        f"User-Agent: wrencos-loadtest\r\n\r\n"
    ).encode()
    return Upgrade(host, port, secure, request)


async def connect(
    url: str, on_message: OnMessage, *, timeout: float = 10.0, max_size: int = 2**24, close_timeout: float = 2.0
) -> WsClient:
    """Open a connection and complete the handshake within `timeout` seconds
    (else `TimeoutError`). Text messages go to `on_message(payload, now_ns)`
    from then on, synchronously, in order."""
    key = base64.b64encode(os.urandom(16))
    up = upgrade_request(url, key)
    loop = asyncio.get_running_loop()
    proto: WsClient | None = None

    def factory() -> WsClient:
        nonlocal proto
        proto = WsClient(on_message, key, up.request, max_size, close_timeout)
        return proto

    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(
                factory,
                up.host,
                up.port,
                ssl=ssl.create_default_context() if up.secure else None,
                server_hostname=up.host if up.secure else None,
            )
            assert proto is not None
            await proto.opened
    except BaseException:
        if proto is not None:
            if not proto.opened.done():
                proto.opened.cancel()  # nobody will wait for it any more
            proto.abort()
        raise
    return proto
