"""The gateway's one dependency on uvicorn's and websockets' internals.

Everything below ASGI that the gateway does lives here, and only here:
`FanoutWebSocketProtocol` subclasses uvicorn's `WebSocketsSansIOProtocol`
(uvicorn 0.54.0, websockets 17.4), reads its private state (`queue`, `frames`,
`curr_msg_data_type`, `close_sent`, `transport`) and overrides three of its
hooks (`handle_connect`, `send_receive_event_to_app`, `receive`). The rest of
the gateway sees a small public API:

- `FanoutWebSocketProtocol`: the class to give uvicorn (`uvicorn.Config(ws=...)`).
- `raw_socket(scope)`: the connection's `RawSocket`, or None under any other
  server (the caller then uses plain ASGI).
- `RawSocket.transport`: write pre-framed bytes to it directly; never waits.
- `RawSocket.abort(code, reason)`: a close frame, then close the transport.
- `RawSocket.inbound`: an optional function that handles a text message inline.
- `text_frame(payload)`: the bytes of one text frame, to write raw.

What it is for. A server-to-client frame is not masked, so a text frame's
bytes depend only on its payload: encode an event once, frame it once and
write the same bytes to every socket (what uWebSockets' publish does), with no
trip through the framework, the server and the frame encoder per connection.
Inbound, a like storm is tens of thousands of small messages a second; taking
one inline skips, per message, the queue, a task switch, and the pause and
resume of reading (two `epoll_ctl` calls) that uvicorn does for each message
it queues.

Outbound rules. Frames written raw are plain, uncompressed, final text frames:
valid whether or not permessage-deflate was negotiated (an uncompressed
message does not touch the peer's inflate context). There is no backpressure:
the caller checks `transport.get_write_buffer_size()` and aborts a connection
that falls too far behind (see `connection.py`). Once the handshake is done,
the app must send every data frame of a connection raw, never through ASGI
`websocket.send` as well: uvicorn's `send` waits while the transport is paused
for writing and raw writes do not, so mixing the two can reorder what the peer
receives. Each `transport.write` must carry whole frames only (uvicorn writes
its pings, pongs and close frames between the app's writes).

The ordering invariant (inbound). A connection's messages are handled in the
order they arrive, whichever way each one goes. uvicorn parses frames in
`data_received` and calls `send_receive_event_to_app` once per complete
message, in arrival order; normally that puts the message in `queue` (and
pauses reading) for the app's `receive`. Here, a message is offered to
`inbound` instead, inline, only when all of these hold:

1. it is a text message of exactly one frame (a fragmented message always
   goes the ASGI way, whole: `inbound` never sees a part of one);
2. it is valid UTF-8 (otherwise uvicorn's own path closes with 1007);
3. the app is suspended inside `receive` (`_app_waiting`): it has finished
   with every message `receive` gave it before;
4. `queue` is empty: no message (nor connect or disconnect) is waiting for the
   app. In particular, a message queued earlier in this same `data_received`
   has woken the app's `receive` but not yet been taken by it: it is still in
   the queue, so everything behind it queues too;
5. the server has not sent a close (`close_sent`): after that uvicorn drops
   messages, and so does this path.

Under 3 and 4 every earlier message has already been handled completely,
either by the app or inline (inline handling is synchronous), so handling this
one now cannot overtake any of them; and a later message cannot overtake it,
because it is finished before `data_received` parses the next frame. A message
`inbound` declines (returns False) goes into the queue as usual; from then on
the queue is not empty, so the messages behind it queue too until the app has
taken it, which keeps their order.

What the app must do: read a connection from one task, and finish with each
message from `receive` before calling `receive` again (do not hand messages
to other tasks and read on: 3 would then be false while it says true). What
`inbound` must do: be synchronous and quick; return True only if it handled
the message completely, and False, untouched, for anything that needs an
await, or whose handling the reading task must see (its timers, state it
decides on before its next read); never raise (an exception would escape from
`data_received` and the event loop would drop the connection); never call
`receive`. It may write to the transport (answers keep their order with the
app's other raw writes) and may abort the connection.

Version check. At import this module checks that uvicorn's class still has
the hooks it overrides or relies on, with the same parameters, and that
websockets frames bytes as RFC 6455 says; the first connection checks the
private attributes and their types. Either raises `UvicornContractError`,
naming the installed versions. What the check cannot see (message order,
fragments, the close handshake) `tests/gateway/transport/test_uvicorn_contract.py`
tests on a real server: run it after any upgrade of uvicorn or websockets.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, ClassVar

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request

if TYPE_CHECKING:
    from uvicorn._types import ASGIReceiveEvent

WRITTEN_FOR = "uvicorn 0.54.0 with websockets 17.4"
EXTENSION = "wrencos.raw"  # the key of a connection's `RawSocket` in `scope["extensions"]`


class UvicornContractError(RuntimeError):
    """The installed uvicorn or websockets no longer has what this adapter relies on."""


def _broken(what: str) -> UvicornContractError:
    return UvicornContractError(
        f"uvicorn {version('uvicorn')} (websockets {version('websockets')}): {what}. "
        f"gateway/transport/uvicorn_adapter.py was written for {WRITTEN_FOR}; re-read uvicorn's "
        "WebSocketsSansIOProtocol against the ordering invariant in that module's docstring, "
        "then run tests/gateway/transport/test_uvicorn_contract.py."
    )


def text_frame(payload: str | bytes) -> bytes:
    """The bytes of one unmasked, final, uncompressed text frame carrying `payload`."""
    data = payload.encode() if isinstance(payload, str) else payload
    return Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])


def close_frame(code: int, reason: str) -> bytes:
    """The bytes of one unmasked close frame."""
    return Frame(Opcode.CLOSE, Close(code, reason).serialize()).serialize(mask=False, extensions=[])


class RawSocket:
    """One accepted connection's socket, below ASGI.

    `transport` takes pre-framed bytes (whole frames, see `text_frame`) and
    never waits: there is no backpressure, the caller watches
    `transport.get_write_buffer_size()`. `inbound`, when set, is offered the
    connection's text messages inline, under the ordering invariant of the
    module docstring; set it back to None when the app stops reading.
    """

    __slots__ = ("_protocol", "inbound")

    def __init__(self, protocol: FanoutWebSocketProtocol) -> None:
        self._protocol = protocol
        # text -> handled? Called in order with the app's own reads (see the module doc).
        self.inbound: Callable[[str], bool] | None = None

    @property
    def transport(self) -> asyncio.Transport:
        """The socket's transport: write frames to it directly in hot loops."""
        return self._protocol.transport

    def abort(self, code: int, reason: str) -> None:
        """Close now: a close frame after what is already written, then close the
        transport (it flushes that, then ends the TCP connection). Nothing is
        written after the close frame: the transport stops reading (so no pong
        answers) and, with `close_sent` set, uvicorn sends no more pings and
        refuses ASGI sends. Does nothing if already closing."""
        p = self._protocol
        transport = p.transport
        if p.close_sent or transport is None or transport.is_closing():
            return
        p.close_sent = True
        transport.write(close_frame(code, reason))
        transport.close()


def raw_socket(scope: Mapping[str, Any]) -> RawSocket | None:
    """The connection's `RawSocket`, or None if the server is not running
    `FanoutWebSocketProtocol` (the app then sends and closes through ASGI)."""
    extensions = scope.get("extensions")
    return extensions.get(EXTENSION) if isinstance(extensions, dict) else None


class FanoutWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (websockets' sans-I/O implementation) that
    also puts a `RawSocket` in the ASGI scope and offers text messages to its
    `inbound` inline. The handshake, pings, close and the ASGI path are uvicorn's."""

    _checked: ClassVar[bool] = False  # the instance state was checked (on the first connection)
    _raw: RawSocket | None = None
    _app_waiting = False  # the app is inside `receive` (with nothing queued, it is suspended there)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not FanoutWebSocketProtocol._checked:
            _check_state(self)
            FanoutWebSocketProtocol._checked = True

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # none when the handshake was refused
        if scope is not None:
            self._raw = RawSocket(self)
            scope["extensions"][EXTENSION] = self._raw

    def send_receive_event_to_app(self) -> None:
        # Conditions 1 to 5 of the ordering invariant (module docstring).
        raw = self._raw
        if (
            raw is not None
            and raw.inbound is not None
            and self._app_waiting
            and self.curr_msg_data_type == "text"
            and len(self.frames) == 1
            and not self.close_sent
            and self.queue.empty()
        ):
            try:
                text = bytes(self.frames[0]).decode()
            except UnicodeDecodeError:
                pass  # uvicorn's own path closes with 1007
            else:
                if raw.inbound(text):
                    self.frames = []
                    return
        super().send_receive_event_to_app()

    async def receive(self) -> ASGIReceiveEvent:
        self._app_waiting = True
        try:
            return await super().receive()
        finally:
            self._app_waiting = False


# ---------------------------------------------------------------- the version check

# uvicorn's methods this module overrides or whose behaviour the invariant relies
# on, with their parameters after `self`.
_HOOKS: dict[str, tuple[str, ...]] = {
    "handle_connect": ("event",),  # overridden: sets `scope`
    "send_receive_event_to_app": (),  # overridden: once per complete message, its frames in `frames`
    "receive": (),  # overridden: the ASGI receive, `queue.get()` then resume reading
    "handle_text": ("event",),  # a message's first frame: sets `curr_msg_data_type` and `frames`
    "handle_cont": ("event",),  # a continuation frame: appends to `frames`
    "data_received": ("data",),  # parses frames and handles them in order, synchronously
}

# uvicorn's instance state this module reads or writes, and its type.
_STATE: dict[str, type | tuple[type, ...]] = {
    "queue": asyncio.Queue,  # what the app's `receive` will return next
    "frames": list,  # the frames of the message being received
    "curr_msg_data_type": str,  # "text" or "bytes"
    "close_sent": bool,  # the server sent its close: messages are dropped
    "read_paused": bool,
}


def _check_hooks() -> None:
    for name, params in _HOOKS.items():
        hook = getattr(WebSocketsSansIOProtocol, name, None)
        if hook is None:
            raise _broken(f"WebSocketsSansIOProtocol has no method {name}()")
        found = tuple(inspect.signature(hook).parameters)[1:]
        if found != params:
            raise _broken(f"WebSocketsSansIOProtocol.{name} takes {found}, not {params}")
    if not inspect.iscoroutinefunction(WebSocketsSansIOProtocol.receive):
        raise _broken("WebSocketsSansIOProtocol.receive is not a coroutine function")
    if text_frame("ok") != b"\x81\x02ok" or close_frame(1013, "") != b"\x88\x02\x03\xf5":
        raise _broken("websockets no longer frames a text or close frame as RFC 6455 says")


def _check_state(protocol: WebSocketsSansIOProtocol) -> None:
    if not hasattr(protocol, "transport"):
        raise _broken("WebSocketsSansIOProtocol has no attribute transport")
    for name, kind in _STATE.items():
        value = getattr(protocol, name, None)
        if not isinstance(value, kind):
            raise _broken(f"WebSocketsSansIOProtocol.{name} is {type(value).__name__}, not {kind}")


_check_hooks()
