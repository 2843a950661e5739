"""The admin side of a run: REST setup, one admin WebSocket, and admin actions.

Admin actions are pluggable: `register_action(name)` adds an async function
`(ctx, stream_id) -> ActionResult`; `--action NAME@SECONDS` runs it on every
stream of the run at that second. Built in: `pin` (create a catalogue product
and pin it over the admin WebSocket; viewers measure the pin's fan-out latency
from the send time in its name), `flash-sale` (POST to the flash-sale endpoint; skipped with a
clear message if the server answers 404), `stop` (stop the stream over REST).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import websockets

from loadtest import messages
from loadtest.config import Gateway, LoadConfig


class SetupError(RuntimeError):
    """The run cannot start (bad credentials, gateway down, ...); the message says why."""


@dataclass(slots=True)
class ActionResult:
    name: str
    stream_id: str
    at: float
    ok: bool
    skipped: bool = False
    status: int | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "streamId": self.stream_id,
            "at": round(self.at, 3),
            "ok": self.ok,
            "skipped": self.skipped,
            "status": self.status,
            "message": self.message,
        }


def api_error(r: httpx.Response) -> str:
    try:
        body = r.json()
        return str(body.get("message") or body.get("error") or body)
    except ValueError:
        return r.text[:200]


async def login(gw: Gateway, email: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=gw.http, timeout=30) as c:
        try:
            r = await c.post("/auth/login", json={"email": email, "password": password})
        except httpx.HTTPError as e:
            raise SetupError(f"cannot reach {gw.http}: {e}") from e
    if r.status_code != 200:
        raise SetupError(f"admin login at {gw.http} failed ({r.status_code}): {api_error(r)}")
    return str(r.json()["token"])


async def create_streams(gw: Gateway, token: str, count: int, name: str) -> list[str]:
    """Create and start `count` streams over REST; their ids."""
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=gw.http, timeout=60, headers={"Authorization": f"Bearer {token}"}) as c:
        for i in range(count):
            r = await c.post("/livestreams", json={"title": f"{name} {i + 1}", "description": "load test"})
            if r.status_code != 201:
                raise SetupError(f"POST /livestreams failed ({r.status_code}): {api_error(r)}")
            sid = str(r.json()["id"])
            r = await c.post(f"/livestreams/{sid}/start")
            if r.status_code != 200:
                raise SetupError(f"POST /livestreams/{sid}/start failed ({r.status_code}): {api_error(r)}")
            ids.append(sid)
    return ids


async def stop_streams(gw: Gateway, token: str, ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=gw.http, timeout=60, headers={"Authorization": f"Bearer {token}"}) as c:
        for sid in ids:
            await c.post(f"/livestreams/{sid}/stop")


async def wait_live(gateways: list[Gateway], ids: list[str], timeout: float = 30.0) -> None:
    """Every gateway lists every stream as active (each learns of it through the registry)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10) as c:
        for gw in gateways:
            while True:
                try:
                    r = await c.get(f"{gw.http}/livestreams/active", params={"limit": 100})
                    live = {s.get("id") for s in r.json()} if r.status_code == 200 else set()
                except (httpx.HTTPError, ValueError):
                    live = set()
                if set(ids) <= live or len(ids) > 100:
                    break
                if time.monotonic() > deadline:
                    raise SetupError(f"{gw.http} does not list streams {sorted(set(ids) - live)} as live")
                await asyncio.sleep(0.2)


class AdminSocket:
    """The admin's WebSocket (`register_admin`). Reads every frame (admins get
    every stream's events) so the server never sees it as a slow consumer."""

    def __init__(self, gw: Gateway, token: str) -> None:
        self.gw = gw
        self.token = token
        self.ws: Any = None
        self.frames = 0
        self.errors: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._registered = asyncio.Event()

    async def open(self) -> None:
        self.ws = await websockets.connect(
            self.gw.ws, max_size=2**24, compression=None, ping_interval=None, max_queue=None
        )
        self._reader = asyncio.create_task(self._read())
        await self.ws.send(orjson.dumps({"type": "register_admin", "userId": "loadtest", "token": self.token}).decode())
        try:
            await asyncio.wait_for(self._registered.wait(), 15)
        except TimeoutError as e:
            raise SetupError(f"admin WebSocket at {self.gw.ws} not registered: {self.errors[-1:]}") from e

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.frames += 1
                if b'"admin_registered"' in (raw if isinstance(raw, bytes) else raw.encode()):
                    self._registered.set()
                elif (raw if isinstance(raw, str) else raw.decode()).startswith('{"type":"error"'):
                    self.errors.append(orjson.loads(raw).get("message", ""))
        except websockets.ConnectionClosed:
            pass

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


@dataclass(slots=True)
class AdminContext:
    """What an admin action may use."""

    config: LoadConfig
    gateway: Gateway
    token: str | None
    socket: AdminSocket | None
    start_ns: int
    counters: Callable[[str, int], None]
    http: httpx.AsyncClient
    pins: dict[str, int] = field(default_factory=dict)

    def elapsed(self) -> float:
        return (time.time_ns() - self.start_ns) / 1e9


Action = Callable[[AdminContext, str], Awaitable[ActionResult]]
ACTIONS: dict[str, Action] = {}


def register_action(name: str) -> Callable[[Action], Action]:
    def deco(fn: Action) -> Action:
        ACTIONS[name] = fn
        return fn

    return deco


async def new_product(ctx: AdminContext, action: str, stream_id: str, name: str, stock: int) -> str | ActionResult:
    """Create a catalogue product for this run (pins and sales show the catalogue's product): its id,
    or the action's result when it could not be made (skipped where the server has no products endpoint)."""
    assert ctx.token is not None
    r = await ctx.http.post(
        "/products",
        json={"name": name, "price": "9.99", "stock": stock},
        headers={"Authorization": f"Bearer {ctx.token}"},
    )
    if r.status_code == 404:
        return ActionResult(
            action,
            stream_id,
            ctx.elapsed(),
            False,
            skipped=True,
            status=404,
            message="skipped: the server has no products endpoint (404)",
        )
    if r.status_code >= 300:
        return ActionResult(action, stream_id, ctx.elapsed(), False, status=r.status_code, message=api_error(r))
    return str(r.json()["id"])


@register_action("pin")
async def pin_product(ctx: AdminContext, stream_id: str) -> ActionResult:
    """Pin a new catalogue product (created for this pin over REST) over the admin WebSocket; its
    name carries this run's id, its number and the send time (`messages.pin_name`)."""
    if ctx.socket is None or ctx.token is None:
        return ActionResult("pin", stream_id, ctx.elapsed(), False, skipped=True, message="no admin credentials")
    n = ctx.pins.get(stream_id, 0) + 1
    ctx.pins[stream_id] = n
    product_id = await new_product(ctx, "pin", stream_id, messages.pin_name(ctx.config.run_id, n, time.time_ns()), 1)
    if isinstance(product_id, ActionResult):
        return product_id
    await ctx.socket.send({"type": "pin_product", "streamId": stream_id, "productId": product_id, "displayOrder": n})
    ctx.counters("pins_sent", 1)
    return ActionResult("pin", stream_id, ctx.elapsed(), True, message=f"product {n}")


@register_action("flash-sale")
async def flash_sale(ctx: AdminContext, stream_id: str) -> ActionResult:
    """Start a flash sale the way a shop does: a catalogue product (created for
    this run), pinned over REST, then put on sale through the flash-sale endpoint."""
    if ctx.token is None:
        return ActionResult("flash-sale", stream_id, ctx.elapsed(), False, skipped=True, message="no admin credentials")
    auth = {"Authorization": f"Bearer {ctx.token}"}
    path = ctx.config.flash_sale_path.format(stream_id=stream_id)
    product_id = await new_product(ctx, "flash-sale", stream_id, f"loadtest {ctx.config.run_id}", 1000)
    if isinstance(product_id, ActionResult):
        return product_id
    pinned = await ctx.http.post(f"/livestreams/{stream_id}/pin", json={"productId": product_id}, headers=auth)
    if pinned.status_code >= 300:
        return ActionResult(
            "flash-sale", stream_id, ctx.elapsed(), False, status=pinned.status_code, message=api_error(pinned)
        )
    body = {"productId": product_id, "price": "4.99", "quantity": 100, "perCustomerLimit": 1, "durationSeconds": 30}
    r = await ctx.http.post(path, json=body, headers=auth)
    if r.status_code == 404:
        return ActionResult(
            "flash-sale",
            stream_id,
            ctx.elapsed(),
            False,
            skipped=True,
            status=404,
            message=f"skipped: the server has no flash-sale endpoint at POST {path} (404)",
        )
    ok = r.status_code < 300
    if ok:
        ctx.counters("flash_sales", 1)
    return ActionResult(
        "flash-sale", stream_id, ctx.elapsed(), ok, status=r.status_code, message="started" if ok else api_error(r)
    )


@register_action("stop")
async def stop_stream(ctx: AdminContext, stream_id: str) -> ActionResult:
    """Stop the stream over REST (viewers get `stream_stopped`; senders stopped half a second before)."""
    if ctx.token is None:
        return ActionResult("stop", stream_id, ctx.elapsed(), False, skipped=True, message="no admin credentials")
    r = await ctx.http.post(f"/livestreams/{stream_id}/stop", headers={"Authorization": f"Bearer {ctx.token}"})
    ok = r.status_code == 200
    return ActionResult(
        "stop", stream_id, ctx.elapsed(), ok, status=r.status_code, message="stopped" if ok else api_error(r)
    )


def schedule(config: LoadConfig) -> list[tuple[float, str]]:
    """(second, action) for the whole run, in time order."""
    plan: list[tuple[float, str]] = []
    if config.pin_every > 0:
        t = config.pin_every
        while t < config.duration:
            plan.append((t, "pin"))
            t += config.pin_every
    plan += [(t, "flash-sale") for t in config.flash_sale_at]
    if config.stop_at is not None:
        plan.append((config.stop_at, "stop"))
    plan += [(t, name) for name, t in config.actions]
    unknown = {name for _, name in plan if name not in ACTIONS}
    if unknown:
        raise SetupError(f"unknown admin action(s) {sorted(unknown)}; known: {sorted(ACTIONS)}")
    return sorted(plan)
