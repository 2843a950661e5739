"""`RequestDeadline` on a real uvicorn server with a real HTTP client: a handler
that waits past the deadline is cancelled and answered 503 JSON with
Retry-After; an answer already begun is never cut; quick answers, errors and
WebSockets pass through."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, WebSocket
from fastapi.responses import StreamingResponse
from websockets.asyncio.client import connect

from gateway import errors
from gateway.transport.deadline import RequestDeadline

DEADLINE_S = 0.5


class Seen:
    """What the handlers did, read from the test's thread."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.slow_done = threading.Event()


def deadline_app(seen: Seen) -> FastAPI:
    app = FastAPI()
    errors.install(app)
    app.add_middleware(RequestDeadline, seconds=DEADLINE_S, retry_after_s=2)

    @app.get("/quick")
    async def quick() -> dict[str, str]:
        return {"answer": "quick"}

    @app.get("/hangs")
    async def hangs() -> dict[str, str]:
        try:
            await asyncio.sleep(60)  # a dependency that never answers
        except asyncio.CancelledError:
            seen.cancelled.set()
            raise
        return {"answer": "too late"}

    @app.get("/slow-but-begun")
    async def slow_but_begun() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"first "
            await asyncio.sleep(DEADLINE_S * 3)  # past the deadline, after the answer began
            seen.slow_done.set()
            yield b"last"

        return StreamingResponse(body(), media_type="text/plain")

    @app.get("/fails")
    async def fails() -> dict[str, str]:
        raise errors.ApiError(409, "already done")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await asyncio.sleep(DEADLINE_S * 2)  # a socket lives longer than any REST deadline
        await websocket.send_text("still here")
        await websocket.close()

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(deadline_app(seen), lifespan="off", log_config=None, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield f"127.0.0.1:{port}", seen
    srv.should_exit = True
    thread.join(10)
    sock.close()


async def test_a_handler_past_the_deadline_is_cancelled_and_answered_503_json_with_retry_after(
    server: tuple[str, Seen],
) -> None:
    address, seen = server
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as client:
        began = time.monotonic()
        r = await client.get("/hangs")
        took = time.monotonic() - began
    assert r.status_code == 503
    assert r.headers["retry-after"] == "2"
    body = r.json()
    assert body["error"] == "deadline_exceeded" and body["status"] == 503
    assert f"{DEADLINE_S:g} s" in body["message"]
    assert DEADLINE_S <= took < 5, took  # answered at the deadline, not after the handler's 60 s
    assert seen.cancelled.wait(5), "the handler was left running"


async def test_an_answer_already_begun_finishes_whole(server: tuple[str, Seen]) -> None:
    address, seen = server
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as client:
        r = await client.get("/slow-but-begun")
    assert r.status_code == 200
    assert r.text == "first last"
    assert seen.slow_done.is_set()


async def test_quick_answers_and_errors_pass_through_unchanged(server: tuple[str, Seen]) -> None:
    address, _ = server
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as client:
        quick = await client.get("/quick")
        fails = await client.get("/fails")
    assert quick.status_code == 200 and quick.json() == {"answer": "quick"}
    assert fails.status_code == 409 and fails.json()["message"] == "already done"
    assert "retry-after" not in fails.headers


async def test_a_websocket_is_not_held_to_the_rest_deadline(server: tuple[str, Seen]) -> None:
    address, _ = server
    async with connect(f"ws://{address}/ws") as ws:
        assert await asyncio.wait_for(ws.recv(), 10) == "still here"
