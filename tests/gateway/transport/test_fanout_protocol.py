"""Frames made once for many sockets are valid WebSocket frames, and a
connection that falls too far behind is closed rather than buffered forever."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from gateway.transport.connection import CLOSE_TRY_AGAIN_LATER, Connection
from gateway.transport.fanout_protocol import text_frame


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    gen = Frame.parse(reader.read_exact, mask=False)
    try:
        next(gen)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_text_frame_round_trips_at_every_length_encoding(size: int) -> None:
    payload = "é" * (size // 2) + "x" * (size % 2)
    frame = parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert frame.data.decode() == payload


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

    def abort(self, code: int, reason: str) -> None:
        self.aborted = (code, reason)
        self.transport.closing = True


class FakeWebSocket:
    def __init__(self, raw: FakeRaw) -> None:
        self.scope = {"extensions": {"wrencos.raw": raw}}


async def test_shared_frames_are_written_as_given_and_slow_readers_are_closed() -> None:
    raw = FakeRaw()
    conn = Connection(FakeWebSocket(raw), max_buffered_bytes=1000)  # type: ignore[arg-type]
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
    conn = Connection(FakeWebSocket(raw))  # type: ignore[arg-type]
    raw.transport.closing = True
    assert not conn.send("x") and conn.closed and raw.transport.written == []


# ---------------------------------------------------------------- inbound: messages handled at once

import asyncio  # noqa: E402

from gateway.transport.fanout_protocol import FanoutWebSocketProtocol, RawWriter  # noqa: E402


class PausableTransport(FakeTransport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = 0

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        pass


def protocol(handled: list[str], take: bool = True) -> FanoutWebSocketProtocol:
    """The protocol as uvicorn leaves it after the handshake (only what messages touch)."""
    p = FanoutWebSocketProtocol.__new__(FanoutWebSocketProtocol)
    p.queue = asyncio.Queue()
    p.transport = PausableTransport()  # type: ignore[assignment]
    p.frames, p.close_sent, p.read_paused = [], False, False
    p._raw = RawWriter(p)

    def inbound(text: str) -> bool:
        handled.append(text)
        return take

    p._raw.inbound = inbound
    return p


def deliver(p: FanoutWebSocketProtocol, text: str) -> None:
    p.curr_msg_data_type = "text"
    p.frames = [text.encode()]
    p.send_receive_event_to_app()


async def test_a_message_is_handled_at_once_only_while_the_app_waits_with_nothing_queued() -> None:
    handled: list[str] = []
    p = protocol(handled)
    deliver(p, "early")  # the app is not reading yet: queued, in order
    assert handled == [] and p.queue.qsize() == 1
    reader = asyncio.create_task(p.receive())
    await asyncio.sleep(0)
    assert (await reader)["text"] == "early"
    reader = asyncio.create_task(p.receive())
    await asyncio.sleep(0)  # the app waits, nothing queued
    deliver(p, "tap")
    assert handled == ["tap"] and p.queue.empty() and p.transport.paused == 1  # type: ignore[attr-defined]
    deliver(p, "tap 2")
    assert handled == ["tap", "tap 2"]
    reader.cancel()


async def test_a_message_declined_goes_to_the_app_as_usual() -> None:
    handled: list[str] = []
    p = protocol(handled, take=False)
    reader = asyncio.create_task(p.receive())
    await asyncio.sleep(0)
    deliver(p, "register")
    assert handled == ["register"]
    assert (await reader)["text"] == "register"


async def test_nothing_is_handled_at_once_behind_a_queued_message_or_after_close() -> None:
    handled: list[str] = []
    p = protocol(handled)
    reader = asyncio.create_task(p.receive())
    await asyncio.sleep(0)
    p.queue.put_nowait({"type": "websocket.receive", "text": "first"})  # woken, not yet run
    deliver(p, "second")
    assert handled == [] and p.queue.qsize() == 2
    assert (await reader)["text"] == "first"
    p.close_sent = True
    reader = asyncio.create_task(p.receive())
    await asyncio.sleep(0)
    deliver(p, "late")
    assert handled == []
    reader.cancel()
