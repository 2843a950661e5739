"""The contract between the gateway and uvicorn, on a real server: what
`uvicorn_adapter.py` relies on and its version check cannot see.

A real uvicorn server (the pinned version, uvloop as in production, in a
thread) runs `FanoutWebSocketProtocol` and a tiny ASGI app; a real client
(`websockets`) talks to it over TCP. The app handles messages that start with
`inline:` in its `RawSocket.inbound` (when the adapter offers them) and all
others through the ASGI `receive`, and records the order it handled them in.
Every test runs with permessage-deflate off (production) and on.

If an upgrade of uvicorn or websockets changes message delivery, fragments,
UTF-8 checks, the close handshake or framing, a test here fails: run this file
after any such upgrade.
"""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Self

import pytest
import uvicorn
import uvloop
import websockets
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect

from gateway.transport.connection import CLOSE_TRY_AGAIN_LATER, Connection
from gateway.transport.uvicorn_adapter import FanoutWebSocketProtocol, text_frame

MAX_BUFFERED = 64 * 1024  # the slow-consumer cut-off of the app's connections
BIG = "é" * 40_000 + "!"  # a frame with a 64-bit length, multi-byte UTF-8
Report = tuple[Any, ...]  # (tag, what, ...) from the app to the test


def contract_app(reports: queue.Queue[Report]) -> Any:
    """The ASGI app. Commands (after `asgi:`): `report` answers, in one frame,
    what was handled since the last report as [path, body] pairs; `flood`
    writes until the connection is cut off as too slow; `frames` sends frames
    both ways (ASGI and raw). Anything else is recorded as handled."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        tag = scope["query_string"].decode()
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        conn = Connection(WebSocket(scope, receive, send), max_buffered_bytes=MAX_BUFFERED)
        raw = conn.raw
        if raw is None:
            reports.put((tag, "no raw socket"))
            return
        handled: list[list[str]] = []

        def inline(text: str) -> bool:
            if not text.startswith("inline:"):
                return False
            handled.append(["inline", text.removeprefix("inline:")])
            return True

        raw.inbound = inline
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    reports.put((tag, "disconnect", message.get("code"), message.get("reason"), handled))
                    return
                # Work with an await in it: the app is outside `receive` meanwhile, and
                # records the message only after it, as a handler that stores would.
                await asyncio.sleep(0)
                kind, _, body = message["text"].partition(":")
                if kind == "inline":  # offered inline while the app was busy, or never offered
                    handled.append(["asgi", body])
                elif body == "report":
                    conn.send(json.dumps(handled))
                    handled.clear()
                elif body == "flood":
                    frame, sent = text_frame("x" * 16_000), 0
                    while sent < 20_000 and conn.send_shared("", frame):
                        sent += 1
                    reports.put((tag, "flooded", sent, conn.closed))
                elif body == "frames":
                    await send({"type": "websocket.send", "text": "through asgi 1"})
                    conn.send(BIG)
                    conn.send_many(["many a", "many b"], text_frame("many a") + text_frame("many b"))
                    conn.send_shared("shared", text_frame("shared"))
                    await send({"type": "websocket.send", "text": "through asgi 2"})
                else:
                    handled.append(["asgi", body])
        finally:
            raw.inbound = None

    return app


class Server:
    """A uvicorn server on a free port, in a thread with its own uvloop loop."""

    def __init__(self, deflate: bool) -> None:
        self.deflate = deflate
        self.reports: queue.Queue[Report] = queue.Queue()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            contract_app(self.reports),
            ws=FanoutWebSocketProtocol,
            ws_per_message_deflate=deflate,
            lifespan="off",
            log_config=None,
            log_level="warning",
            ws_ping_interval=None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: uvloop.run(self._server.serve(sockets=[self._sock])), name="uvicorn-contract", daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline and self._thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def url(self, tag: str) -> str:
        return f"ws://127.0.0.1:{self.port}/?{tag}"

    async def report(self, tag: str, what: str) -> Report:
        """The app's next report of `what` for the connection tagged `tag`."""
        deadline = time.monotonic() + 10
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {what!r} report for {tag}"
            try:
                r = await asyncio.to_thread(self.reports.get, timeout=remaining)
            except queue.Empty:
                continue
            if r[0] == tag and r[1] == what:
                return r


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "deflate"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server(deflate=request.param) as s:
        yield s


@pytest.fixture
async def client(server: Server, request: pytest.FixtureRequest) -> AsyncIterator[ClientConnection]:
    async with connect(server.url(request.node.name), close_timeout=20) as ws:
        assert ws.response is not None
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
        assert ("permessage-deflate" in negotiated) == server.deflate
        yield ws


async def report(ws: ClientConnection) -> list[list[str]]:
    """What the app handled since the last report, as [path, body] pairs. On
    return the app is back in `receive` with nothing queued."""
    await ws.send("asgi:report")
    reported: list[list[str]] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return reported


async def test_interleaved_inline_and_asgi_messages_are_handled_in_arrival_order(client: ClientConnection) -> None:
    n = 2_000
    assert await report(client) == []
    for i in range(n):  # no waiting: many messages reach the server in each read
        await client.send(f"{'inline' if i % 2 == 0 else 'asgi'}:{i}")
    handled = await report(client)
    assert [int(body) for _, body in handled] == list(range(n))
    assert all(path == "asgi" for path, body in handled if int(body) % 2 == 1)  # declined, never taken inline
    inline = sum(path == "inline" for path, _ in handled)
    assert inline > 0, "the fast path was never taken: the adapter's hook is no longer called"


async def test_one_message_at_a_time_goes_inline_when_the_app_waits(client: ClientConnection) -> None:
    await report(client)
    for i in range(20):
        await client.send(f"inline:{i}")
        assert await report(client) == [["inline", str(i)]]
        await client.send(f"asgi:{i}")
        assert await report(client) == [["asgi", str(i)]]


async def test_a_fragmented_message_reaches_the_app_whole_and_never_inline(client: ClientConnection) -> None:
    await report(client)
    await client.send("inline:single")  # the app waits with nothing queued: a single frame goes inline
    assert await report(client) == [["inline", "single"]]
    await client.send(["inline:frag", "men", "ted"])  # the same moment, a message in three frames
    assert await report(client) == [["asgi", "fragmented"]]
    await client.send(["inline:é" * 3, "", "é"])
    assert await report(client) == [["asgi", "é" + "inline:é" * 2 + "é"]]


async def test_the_app_sees_the_clients_close_with_its_code_after_the_messages_before_it(
    server: Server, client: ClientConnection, request: pytest.FixtureRequest
) -> None:
    await report(client)
    await client.send("inline:last")
    await client.close(4001, "bye")
    assert client.close_code == 4001  # uvicorn echoed the close
    _, _, code, reason, handled = await server.report(request.node.name, "disconnect")
    assert (code, reason) == (4001, "bye")
    assert handled == [["inline", "last"]]


async def test_a_slow_consumer_gets_what_was_written_then_a_1013_close_and_the_end_of_the_connection(
    server: Server,
) -> None:
    tag = "slow-consumer"
    async with connect(server.url(tag), close_timeout=20, max_queue=1) as ws:
        await report(ws)
        await ws.send("asgi:flood")  # this client reads nothing until the app is done
        _, _, sent, closed = await server.report(tag, "flooded")
        assert closed and 0 < sent < 20_000, "the connection was not cut off"
        started, received = time.monotonic(), 0
        with pytest.raises(websockets.ConnectionClosedError) as e:
            while True:
                await ws.recv()
                received += 1
        await ws.wait_closed()
        assert time.monotonic() - started < 10  # the server closed TCP: the client did not wait its 20 s
    assert received == sent  # everything written before the cut-off, then the close frame
    assert e.value.rcvd is not None and e.value.rcvd.code == CLOSE_TRY_AGAIN_LATER
    assert e.value.rcvd.reason == "too slow: reconnect to catch up"
    assert (await server.report(tag, "disconnect"))[2] in (1005, 1006)  # the app learns it is gone


async def test_invalid_utf8_closes_with_1007_and_is_never_handled_inline(
    server: Server, client: ClientConnection, request: pytest.FixtureRequest
) -> None:
    await report(client)
    await client.send(b"inline:\xff\xfe", text=True)  # the app waits with nothing queued
    with pytest.raises(websockets.ConnectionClosedError) as e:
        await asyncio.wait_for(client.recv(), 10)
    assert e.value.rcvd is not None and e.value.rcvd.code == 1007
    _, _, code, _, handled = await server.report(request.node.name, "disconnect")
    assert code == 1007 and handled == []


async def test_frames_written_raw_arrive_as_text_frames_between_the_servers_own(client: ClientConnection) -> None:
    await client.send("asgi:frames")
    got = [await asyncio.wait_for(client.recv(), 10) for _ in range(6)]
    assert got == ["through asgi 1", BIG, "many a", "many b", "shared", "through asgi 2"]
    assert await report(client) == []  # the connection is still sound
