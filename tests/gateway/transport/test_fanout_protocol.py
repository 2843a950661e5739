"""Frames made once for many sockets are valid WebSocket frames, and a
connection that falls too far behind is closed rather than buffered forever."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from gateway.transport.connection import CLOSE_TRY_AGAIN_LATER, Connection
from gateway.transport.uvicorn_adapter import text_frame


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    gen = Frame.parse(reader.read_exact, mask=False)
    try:
        next(gen)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_text_frame_round_trips_at_every_length_encoding(size: int) -> None:
    payload = "é" * (size // 2) + "x" * (size % 2)
    frame = parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert bytes(frame.data).decode() == payload


class FakeTransport:
    """Stands in for the socket's transport: records writes, reports a buffer level."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.level = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return self.level

    def is_closing(self) -> bool:
        return self.closing


class FakeRaw:
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.aborted: tuple[int, str] | None = None
        self.inbound: Callable[[str], bool] | None = None  # as RawSocket's: a session may handle frames inline

    def abort(self, code: int, reason: str) -> None:
        self.aborted = (code, reason)
        self.transport.closing = True


class FakeWebSocket:
    def __init__(self, raw: FakeRaw) -> None:
        self.scope = {"extensions": {"wrencos.raw": raw}}


async def test_shared_frames_are_written_as_given_and_slow_readers_are_closed() -> None:
    raw = FakeRaw()
    conn = Connection(FakeWebSocket(raw), max_buffered_bytes=1000)  # type: ignore[arg-type]  # a stand-in socket
    shared = text_frame('{"type":"x"}')
    assert conn.send_shared('{"type":"x"}', shared)
    assert raw.transport.written == [shared]
    assert conn.send("hello") and parse(raw.transport.written[-1]).data == b"hello"
    both = text_frame("a") + text_frame("b")
    assert conn.send_many(["a", "b"], both) and raw.transport.written[-1] == both
    raw.transport.level = 1001  # the peer stopped reading
    assert not conn.send("more")
    assert conn.closed and raw.aborted is not None and raw.aborted[0] == CLOSE_TRY_AGAIN_LATER
    assert not conn.send("after")
    assert len(raw.transport.written) == 3


async def test_a_socket_closed_by_the_peer_is_not_written() -> None:
    raw = FakeRaw()
    conn = Connection(FakeWebSocket(raw))  # type: ignore[arg-type]  # a stand-in socket: only its scope is read
    raw.transport.closing = True
    assert not conn.send("x") and conn.closed and raw.transport.written == []
