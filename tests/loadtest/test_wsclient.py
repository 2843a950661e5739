"""The viewers' minimal WebSocket client: frame parsing, client frames, the handshake,
and the recorder's receive-path shortcuts (bulk histogram recording, hot counters)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
import random

import numpy as np
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from loadtest import wsclient
from loadtest.stats import (
    SecondRecorder,
    decode,
    encode,
    new_hist,
    record_many_us,
    record_us,
)
from loadtest.wsclient import FrameParser, ProtocolError, encode_frame, mask_payload


def server_frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """A server-to-client frame (unmasked), built by hand."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if n < 126:
        head = bytes((b0, n))
    elif n < 65536:
        head = bytes((b0, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, 127)) + n.to_bytes(8, "big")
    return head + payload


class Collector:
    def __init__(self, max_size: int = 2**24) -> None:
        self.messages: list[bytes] = []
        self.controls: list[tuple[int, bytes]] = []
        self.parser = FrameParser(
            lambda p, now: self.messages.append(bytes(p)), lambda op, p: self.controls.append((op, bytes(p))), max_size
        )


def feed_in_pieces(c: Collector, data: bytes, sizes: list[int]) -> None:
    pos = 0
    for s in sizes:
        c.parser.feed(data[pos : pos + s], 0)
        pos += s
    c.parser.feed(data[pos:], 0)


def parse_client_frame(data: bytes) -> Frame:
    """Parse a client frame with the websockets library, as a server would (mask required)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    gen = Frame.parse(reader.read_exact, mask=True)
    try:
        next(gen)
    except StopIteration as e:
        return e.value
    raise AssertionError("incomplete frame")


# ------------------------------------------------------------------ parsing server frames


@pytest.mark.parametrize("size", [0, 1, 125, 126, 200, 65535, 65536, 300_000])
def test_lengths_7_16_and_64_bit(size: int) -> None:
    payload = os.urandom(size)
    c = Collector()
    c.parser.feed(server_frame(0x1, payload), 0)
    assert c.messages == [payload]


def test_every_split_of_a_stream_of_frames_gives_the_same_messages() -> None:
    payloads = [b'{"type":"chat_message"}', b"x" * 126, b"y" * 70_000, b"", b"z" * 125]
    data = b"".join(server_frame(0x1, p) for p in payloads)
    # byte by byte
    c = Collector()
    for i in range(len(data)):
        c.parser.feed(data[i : i + 1], 0)
    assert c.messages == payloads
    # random splits, including inside the 2-, 4- and 10-byte headers
    rng = random.Random(7)
    for _ in range(50):
        c = Collector()
        cuts = sorted(rng.sample(range(1, len(data)), 12))
        feed_in_pieces(c, data, [b - a for a, b in itertools.pairwise([0, *cuts])])
        assert c.messages == payloads


def test_partial_header_waits_for_the_rest() -> None:
    frame = server_frame(0x1, b"a" * 70_000)  # 10-byte header
    c = Collector()
    for cut in (1, 2, 5, 9):
        c = Collector()
        c.parser.feed(frame[:cut], 0)
        assert c.messages == []
        c.parser.feed(frame[cut:], 0)
        assert c.messages == [b"a" * 70_000]


def test_fragmented_message_with_a_ping_between_fragments() -> None:
    data = (
        server_frame(0x1, b'{"type":', fin=False)
        + server_frame(0x9, b"hi")
        + server_frame(0x0, b'"x",', fin=False)
        + server_frame(0x0, b'"n":1}', fin=True)
        + server_frame(0x1, b"next")
    )
    c = Collector()
    feed_in_pieces(c, data, [3, 7, 11])
    assert c.messages == [b'{"type":"x","n":1}', b"next"]
    assert c.controls == [(0x9, b"hi")]


@pytest.mark.parametrize(
    "data, code",
    [
        (bytes((0x81, 0x80 | 3)) + b"\0\0\0\0abc", 1002),  # masked by the server
        (server_frame(0x1, b"x", rsv1=True), 1002),  # compression bit, none negotiated
        (server_frame(0x0, b"x"), 1002),  # continuation of nothing
        (server_frame(0x1, b"a", fin=False) + server_frame(0x1, b"b"), 1002),  # new message inside a fragmented one
        (server_frame(0x9, b"p", fin=False), 1002),  # fragmented control frame
        (bytes((0x89, 126)) + (126).to_bytes(2, "big") + b"p" * 126, 1002),  # control frame over 125 bytes
        (server_frame(0x3, b"x"), 1002),  # reserved opcode
        (server_frame(0x2, b"\x00\x01"), 1003),  # binary: text only
        (server_frame(0x1, b"x" * 1001), 1009),  # over max_size
    ],
)
def test_protocol_errors(data: bytes, code: int) -> None:
    c = Collector(max_size=1000)
    with pytest.raises(ProtocolError) as e:
        c.parser.feed(data, 0)
    assert e.value.code == code


def test_fragmented_message_over_max_size() -> None:
    c = Collector(max_size=100)
    c.parser.feed(server_frame(0x1, b"a" * 60, fin=False), 0)
    with pytest.raises(ProtocolError) as e:
        c.parser.feed(server_frame(0x0, b"a" * 60), 0)
    assert e.value.code == 1009


def test_message_callback_gets_the_read_time() -> None:
    seen: list[int] = []
    p = FrameParser(lambda m, now: seen.append(now), lambda op, m: None)
    p.feed(server_frame(0x1, b"a") + server_frame(0x1, b"b")[:1], 111)
    p.feed(server_frame(0x1, b"b")[1:], 222)
    assert seen == [111, 222]


# ------------------------------------------------------------------ client frames


@pytest.mark.parametrize("size", [0, 3, 125, 126, 65535, 65536, 100_000])
def test_client_frames_are_masked_and_valid(size: int) -> None:
    payload = os.urandom(size)
    data = encode_frame(wsclient.OP_TEXT, payload)
    assert data[1] & 0x80  # MASK bit
    frame = parse_client_frame(data)  # websockets unmasks it, as a server does
    assert frame.opcode == Opcode.TEXT and frame.fin and frame.data == payload


def test_masking_uses_a_fresh_key_and_is_an_involution() -> None:
    payload = b"hello, world: a text long enough to repeat the key"
    a, b = encode_frame(wsclient.OP_TEXT, payload), encode_frame(wsclient.OP_TEXT, payload)
    assert a[2:6] != b[2:6] and a[6:] != payload
    key = b"\x01\x02\x03\x04"
    assert mask_payload(mask_payload(payload, key), key) == payload
    assert mask_payload(b"\x00\x00\x00\x00\x00", key) == b"\x01\x02\x03\x04\x01"


def test_ping_is_answered_with_a_masked_pong_and_close_is_echoed() -> None:
    class Transport(asyncio.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.out = b""
            self.closing = False

        def write(self, data: bytes | bytearray | memoryview) -> None:
            self.out += data

        def is_closing(self) -> bool:
            return self.closing

        def abort(self) -> None:
            self.closing = True

    async def go() -> None:
        key = base64.b64encode(os.urandom(16))
        got: list[bytes] = []
        ws = wsclient.WsClient(lambda p, now: got.append(p), key, b"GET / HTTP/1.1\r\n\r\n")
        t = Transport()
        ws.connection_made(t)
        assert t.out.startswith(b"GET / HTTP/1.1")
        t.out = b""
        accept = base64.b64encode(hashlib.sha1(key + wsclient.GUID).digest())
        response = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        # the response, a text frame and a ping in one read
        ws.data_received(response + server_frame(0x1, b'{"a":1}') + server_frame(0x9, b"ping!"))
        assert ws.opened.done() and ws.opened.exception() is None
        assert got == [b'{"a":1}']
        pong = parse_client_frame(t.out)
        assert pong.opcode == Opcode.PONG and pong.data == b"ping!"
        t.out = b""
        assert ws.send_text('{"type":"x"}')
        sent = parse_client_frame(t.out)
        assert sent.opcode == Opcode.TEXT and sent.data == b'{"type":"x"}'
        t.out = b""
        ws.data_received(server_frame(0x8, (1012).to_bytes(2, "big") + b"restart"))
        echo = parse_client_frame(t.out)
        assert echo.opcode == Opcode.CLOSE and echo.data[:2] == (1012).to_bytes(2, "big")
        assert not ws.send_text("late")
        ws.connection_lost(None)
        assert ws.close_code == 1012 and ws.failure is None and ws.closed.done()

    asyncio.run(go())


def test_bad_handshakes() -> None:
    async def answer(response: bytes) -> BaseException | None:
        ws = wsclient.WsClient(lambda p, now: None, base64.b64encode(os.urandom(16)), b"")

        class T(asyncio.Transport):
            def write(self, d: bytes | bytearray | memoryview) -> None: ...
            def is_closing(self) -> bool:
                return False

            def abort(self) -> None:
                ws.connection_lost(None)

        ws.connection_made(T())
        ws.data_received(response)
        return ws.opened.exception() if ws.opened.done() else None

    e = asyncio.run(answer(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))
    assert isinstance(e, wsclient.InvalidStatus) and e.status == 503
    e = asyncio.run(
        answer(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: wrong\r\n\r\n"
        )
    )
    assert isinstance(e, wsclient.HandshakeError) and "Accept" in str(e)


def test_connects_to_a_real_websockets_server() -> None:
    """Against the websockets library's server: handshake, text both ways, ping, close."""
    from websockets.asyncio.server import ServerConnection, serve

    async def go() -> None:
        async def handler(conn: ServerConnection) -> None:
            async for msg in conn:
                assert isinstance(msg, str)  # the client sends text frames
                await conn.send("echo " + msg)
                await conn.send("x" * 70_000)
                await conn.ping(b"p")
                await conn.close(1001)

        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            got: list[bytes] = []
            ws = await wsclient.connect(f"ws://127.0.0.1:{port}/", lambda p, now: got.append(p), timeout=5)
            ws.send_text("hello")
            await asyncio.wait_for(asyncio.shield(ws.closed), 5)
        assert got == [b"echo hello", b"x" * 70_000]
        assert ws.close_code == 1001 and ws.failure is None

    asyncio.run(go())


def test_connect_refused_and_timeout() -> None:
    async def go() -> None:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with pytest.raises(ConnectionRefusedError):
            await wsclient.connect(f"ws://127.0.0.1:{port}/", lambda p, now: None, timeout=5)
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # accepts, never answers
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(TimeoutError):
            await wsclient.connect(f"ws://127.0.0.1:{port}/", lambda p, now: None, timeout=0.2)
        server.close()

    asyncio.run(go())


# ------------------------------------------------------------------ the receive path's shortcuts


def test_bulk_histogram_recording_equals_one_by_one() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [
            rng.integers(-5, 300, 1000),
            rng.integers(1, 130_000_000, 20_000),
            [0, 1, 127, 128, 255, 256, 1 << 20, 120_000_000, 200_000_000],
        ]
    )
    one = new_hist()
    for v in values.tolist():
        record_us(one, v)
    bulk = new_hist()
    record_many_us(bulk, values.tolist())
    assert encode(bulk) == encode(one)
    assert decode(encode(bulk)).get_total_count() == len(values)


def test_hot_counters_land_in_the_second_they_were_measured() -> None:
    t0 = 1_700_000_000 * 10**9
    rec = SecondRecorder(t0)
    for now, lat in ((t0 + 10, 5), (t0 + 999_999_999, 7), (t0 + 10**9, 9), (t0 + 3 * 10**9 + 1, 11)):
        if not rec.lo <= now < rec.hi:
            rec.roll(now)
        rec.frames += 1
        rec.latency.append(lat)
        rec.recv_by_send[0] = rec.recv_by_send.get(0, 0) + 1
    rec.count(t0 + 5, "frames", 10)  # the cold path adds up with the hot one
    ticks = {t["second"]: t for t in rec.flush(None, {})}
    assert {s: t["counters"].get("frames") for s, t in ticks.items()} == {0: 12, 1: 1, 3: 1}
    assert decode(ticks[0]["hists"]["latency"]).get_total_count() == 2
    assert ticks[3]["recvBySend"] == {0: 1}
