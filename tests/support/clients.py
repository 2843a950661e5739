"""Real clients for tests: a WebSocket client that collects frames, and REST helpers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import websockets

# Every HTTP call a test makes waits at most this long: generous, because a password hash or a go-live on
# a loaded 2-core machine (CI, or the suite beside a benchmark) can take seconds; httpx's default is 5 s.
HTTP_TIMEOUT_S = 30.0

Frame = dict[str, Any]


class WsClient:
    """One app connection. Frames are read in the background into `frames`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[Frame] = []
        self.arrived_at: list[float] = []  # time.monotonic() of each frame, same order as `frames`
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()
        self.closed_code: int | None = None

    async def __aenter__(self) -> WsClient:
        self._ws = await websockets.connect(self.url, max_size=2**22)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                self.frames.append(json.loads(raw))
                self.arrived_at.append(time.monotonic())
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed_code = self._ws.close_code
            self._arrived.set()

    async def send(self, frame: Frame | str) -> None:
        await self._ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def wait_for(self, predicate: Callable[[Frame], bool], timeout: float = 10.0, start: int = 0) -> Frame:
        """The first frame from index `start` on that matches."""
        deadline = asyncio.get_running_loop().time() + timeout
        seen = start
        while True:
            for frame in self.frames[seen:]:
                if predicate(frame):
                    return frame
            seen = max(seen, len(self.frames))
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {timeout} s; got {self.frames[start:]}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_type(self, type_: str, timeout: float = 10.0, **fields: Any) -> Frame:
        return await self.wait_for(
            lambda f: f.get("type") == type_ and all(f.get(k) == v for k, v in fields.items()), timeout
        )

    async def settle(self, quiet: float = 0.6) -> None:
        """Wait until no frame has arrived for `quiet` seconds."""
        while True:
            n = len(self.frames)
            await asyncio.sleep(quiet)
            if len(self.frames) == n:
                return

    def of_type(self, type_: str) -> list[Frame]:
        return [f for f in self.frames if f.get("type") == type_]


class Api:
    """REST calls against one gateway, optionally with a bearer token."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=HTTP_TIMEOUT_S)
        self.token = token

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.post(path, **kw)

    async def put(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.put(path, **kw)

    async def patch(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.patch(path, **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.delete(path, **kw)

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.client.request(method, path, **kw)


async def login(base_url: str, email: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S) as c:
        r = await c.post("/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


async def register_customer(
    base_url: str, email: str, password: str = "correct-horse-1", name: str | None = None
) -> tuple[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S) as c:
        r = await c.post(
            "/auth/register", json={"email": email, "password": password, "name": name or email.split("@")[0]}
        )
        assert r.status_code == 201, r.text
        body = r.json()
        return str(body["token"]), body["user"]
