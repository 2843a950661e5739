"""The load tester's scenarios for Locust (`pip install 'wrencos-live[locust]'`).

    ADMIN_EMAIL=... ADMIN_PASSWORD=... locust -f loadtest/locustfile.py -H http://127.0.0.1:3000 \\
        --headless -u 1000 -r 100 -t 60s --wrencos-streams 2 --wrencos-chat-every 20

Users:
- `Viewer` (weight: all but one user): connects over WebSocket, registers on a
  stream (round-robin over the run's streams), reads every frame, sends a chat
  message every `--wrencos-chat-every` seconds and toggles like every
  `--wrencos-like-every` seconds (0: never). Per-stream chat rate is
  viewers per stream / chat-every.
- `Admin` (exactly one): pins a product every `--wrencos-pin-every` seconds.

What appears in Locust's statistics (request type `WS`):
- `connect`: connect to watching (the stream's snapshot), ms; failures by kind;
- `chat fan-out`: one entry per receipt of a chat message this process sent:
  receipt time minus the send time written in the message (same machine, so
  one clock); in a distributed run each Locust process times only its own
  messages;
- `pin fan-out`: the same for pinned products;
- `chat ack` (v2): send to acknowledgement;
- `seq gap`, `reordered`, `server error`, `closed`: failures, one per occurrence.
Loss per expected receipt is measured by `wrencos loadtest run`, which knows
every viewer's watching window; Locust's model (independent users) does not.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import time
from typing import Any

import gevent
import httpx
import orjson
from locust import User, between, constant, events, task
from locust.env import Environment
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from loadtest import messages

RUN_ID = secrets.token_hex(3)
STREAMS: list[str] = []
CREATED: list[str] = []
_counter = {"chat": 0, "viewer": 0, "pin": 0}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--wrencos-streams",
        type=int,
        default=1,
        help="streams to create (admin credentials from $ADMIN_EMAIL/$ADMIN_PASSWORD)",
    )
    parser.add_argument(
        "--wrencos-stream-ids", default="", help="comma-separated live streams to join instead of creating"
    )
    parser.add_argument(
        "--wrencos-protocol", type=int, default=1, choices=[1, 2], help="1: the old apps' protocol, 2: opted-in"
    )
    parser.add_argument(
        "--wrencos-chat-every", type=float, default=10.0, help="seconds between one viewer's chat messages (0: never)"
    )
    parser.add_argument(
        "--wrencos-like-every", type=float, default=0.0, help="seconds between one viewer's like toggles (0: never)"
    )
    parser.add_argument(
        "--wrencos-pin-every", type=float, default=0.0, help="seconds between the admin's pins (0: never)"
    )


def _host(host: str | None) -> str:
    """Locust's `-H/--host`: every scenario here needs it."""
    if not host:
        raise RuntimeError("give the gateway with -H/--host (http://host:port)")
    return host


def _parsed_options(environment: Environment) -> Any:
    """The parsed command line (with the `--wrencos-*` options); Locust sets it before any test starts."""
    opts = environment.parsed_options
    if opts is None:
        raise RuntimeError("Locust has not parsed its command line")
    return opts


def _ws_url(host: str) -> str:
    return host.replace("https://", "wss://").replace("http://", "ws://").rstrip("/") + "/"


def _admin_token(host: str) -> str:
    r = httpx.post(
        f"{host}/auth/login",
        json={"email": os.environ.get("ADMIN_EMAIL", ""), "password": os.environ.get("ADMIN_PASSWORD", "")},
        timeout=30,
    )
    r.raise_for_status()
    return str(r.json()["token"])


@events.test_start.add_listener
def _setup_streams(environment: Environment, **_: Any) -> None:
    """Create the streams (on the master or a local runner); workers find them live."""
    from locust.runners import WorkerRunner

    opts = _parsed_options(environment)
    if opts.wrencos_stream_ids:
        STREAMS[:] = [s for s in opts.wrencos_stream_ids.split(",") if s]
        return
    if isinstance(environment.runner, WorkerRunner):
        return
    host = _host(environment.host)
    token = _admin_token(host)
    headers = {"Authorization": f"Bearer {token}"}
    for i in range(opts.wrencos_streams):
        r = httpx.post(f"{host}/livestreams", json={"title": f"locust {RUN_ID} {i + 1}"}, headers=headers, timeout=30)
        r.raise_for_status()
        sid = r.json()["id"]
        httpx.post(f"{host}/livestreams/{sid}/start", headers=headers, timeout=30).raise_for_status()
        STREAMS.append(sid)
        CREATED.append(sid)


@events.test_stop.add_listener
def _stop_streams(environment: Environment, **_: Any) -> None:
    """Stop the streams this run created."""
    if CREATED:
        host = _host(environment.host)
        headers = {"Authorization": f"Bearer {_admin_token(host)}"}
        for sid in CREATED:
            httpx.post(f"{host}/livestreams/{sid}/stop", headers=headers, timeout=30)
        CREATED.clear()


def _streams(host: str) -> list[str]:
    deadline = time.monotonic() + 30
    while not STREAMS and time.monotonic() < deadline:
        r = httpx.get(f"{host}/livestreams/active", params={"limit": 100}, timeout=30)
        if r.status_code == 200 and r.json():
            STREAMS[:] = [s["id"] for s in r.json()]
            break
        gevent.sleep(0.5)
    return STREAMS


def _fire(name: str, ms: float, length: int = 0, exc: Exception | None = None) -> None:
    events.request.fire(
        request_type="WS", name=name, response_time=ms, response_length=length, exception=exc, context={}
    )


class Viewer(User):
    """One app watching one stream; see the module docstring for what it reports."""

    wait_time = constant(1)
    weight = 100

    def on_start(self) -> None:
        opts = _parsed_options(self.environment)
        self.protocol = opts.wrencos_protocol
        self.chat_every = opts.wrencos_chat_every
        self.like_every = opts.wrencos_like_every
        streams = _streams(_host(self.host))
        if not streams:
            raise RuntimeError("no live stream to join")
        _counter["viewer"] += 1
        self.stream_id = streams[_counter["viewer"] % len(streams)]
        self.session_id = f"locust-{RUN_ID}-{_counter['viewer']}"
        self.pending: dict[str, int] = {}
        self.last_seq: int | None = None
        self.epoch: str | None = None
        self.pin_max = -1
        self.next_chat = time.time() + random.random() * self.chat_every if self.chat_every else float("inf")
        self.next_like = time.time() + random.random() * self.like_every if self.like_every else float("inf")
        self.stack = contextlib.ExitStack()
        self.ws: ClientConnection | None = None
        t0 = time.time()
        try:
            ws = self.ws = self.stack.enter_context(
                connect(_ws_url(_host(self.host)), open_timeout=10, max_size=2**24, compression=None)
            )
            register: dict[str, Any] = {"type": "register", "sessionId": self.session_id, "streamId": self.stream_id}
            if self.protocol == 2:
                register["protocol"] = 2
            ws.send(orjson.dumps(register).decode())
            while True:
                frame = orjson.loads(ws.recv(timeout=10))
                events_ = frame.get("events", []) if frame.get("type") == "batch" else [frame]
                if any(e.get("type") == "chat_history" for e in events_):
                    self._order(events_[-1])
                    break
        except Exception as e:  # noqa: BLE001 - a failed connect is a failed request
            _fire("connect", (time.time() - t0) * 1000, exc=e)
            self.ws = None
            return
        _fire("connect", (time.time() - t0) * 1000)
        self.reader = gevent.spawn(self._read)

    def on_stop(self) -> None:
        self.stack.close()

    def _read(self) -> None:
        if self.ws is None:
            return
        try:
            for raw in self.ws:
                now = time.time_ns()
                frame = orjson.loads(raw)
                for ev in frame.get("events", []) if frame.get("type") == "batch" else [frame]:
                    self._event(ev, now, len(raw))
        except ConnectionClosed as e:
            _fire("closed", 0, exc=e)

    def _order(self, ev: dict[str, Any]) -> None:
        seq = ev.get("seq")
        if not isinstance(seq, int) or ev.get("streamId") != self.stream_id:
            return
        if self.last_seq is None or ev.get("epoch") != self.epoch:
            self.last_seq, self.epoch = seq, ev.get("epoch")
        elif seq > self.last_seq + 1:
            _fire("seq gap", 0, exc=RuntimeError(f"{seq - self.last_seq - 1} event(s) missing"))
            self.last_seq = seq
        elif seq == self.last_seq + 1:
            self.last_seq = seq
        elif seq < self.last_seq:
            _fire("reordered", 0, exc=RuntimeError("event older than the last one"))

    def _event(self, ev: dict[str, Any], now: int, length: int) -> None:
        kind = ev.get("type")
        if kind == "error":
            _fire("server error", 0, exc=RuntimeError(str(ev.get("message"))))
            return
        if kind == "ack":
            cid = ev.get("clientMsgId")
            sent = self.pending.pop(cid, None) if isinstance(cid, str) else None
            if sent is not None:
                _fire("chat ack", (now - sent) / 1e6)
            return
        if ev.get("streamId") not in (None, self.stream_id):
            return
        self._order(ev)
        if kind == "chat_message":
            mark = messages.parse_chat(ev.get("message"))
            if mark is not None and mark.run_id == RUN_ID:
                _fire("chat fan-out", (now - mark.send_ns) / 1e6, length)
        elif kind == "pinned_products_updated":
            for p in ev.get("pinnedProducts") or []:
                got = messages.parse_pin(RUN_ID, p)
                if got is not None and got.n > self.pin_max:
                    self.pin_max = got.n
                    _fire("pin fan-out", (now - got.send_ns) / 1e6, length)

    @task
    def chat_and_like(self) -> None:
        if self.ws is None:
            return
        now = time.time()
        try:
            if now >= self.next_chat:
                self.next_chat += self.chat_every
                _counter["chat"] += 1
                send_ns = time.time_ns()
                frame: dict[str, Any] = {
                    "type": "chat_message",
                    "streamId": self.stream_id,
                    "username": "locust",
                    "message": messages.chat_text(RUN_ID, 0, _counter["chat"], send_ns),
                }
                if self.protocol == 2:
                    frame["clientMsgId"] = f"{RUN_ID}-{_counter['chat']}"
                    self.pending[frame["clientMsgId"]] = send_ns
                self.ws.send(orjson.dumps(frame).decode())
            if now >= self.next_like:
                self.next_like += self.like_every
                self.ws.send(
                    orjson.dumps(
                        {"type": "toggle_like", "sessionId": self.session_id, "streamId": self.stream_id}
                    ).decode()
                )
        except ConnectionClosed as e:
            _fire("send", 0, exc=e)


class Admin(User):
    """The shop's admin: pins a product on every stream every `--wrencos-pin-every` seconds."""

    fixed_count = 1
    wait_time = between(0.9, 1.1)

    def on_start(self) -> None:
        self.pin_every = _parsed_options(self.environment).wrencos_pin_every
        self.next_pin = time.time() + self.pin_every if self.pin_every else float("inf")
        self.ws: ClientConnection | None = None
        if not self.pin_every:
            return
        host = _host(self.host)
        token = self.token = _admin_token(host)
        self.stack = contextlib.ExitStack()
        ws = self.ws = self.stack.enter_context(
            connect(_ws_url(host), open_timeout=10, max_size=2**24, compression=None)
        )
        ws.send(orjson.dumps({"type": "register_admin", "userId": "locust", "token": token}).decode())
        gevent.spawn(self._drain)

    def _drain(self) -> None:
        if self.ws is None:
            return
        try:
            for _ in self.ws:  # admins get every stream's events: read them so we are never a slow consumer
                pass
        except ConnectionClosed:
            pass

    def on_stop(self) -> None:
        if self.ws is not None:
            self.stack.close()

    @task
    def pin(self) -> None:
        if self.ws is None or time.time() < self.next_pin:
            return
        self.next_pin += self.pin_every
        for sid in _streams(_host(self.host)):
            _counter["pin"] += 1
            # A pin shows the catalogue's product: make one whose name carries the send time.
            name = messages.pin_name(RUN_ID, _counter["pin"], time.time_ns())
            r = httpx.post(
                f"{_host(self.host)}/products",
                json={"name": name, "price": "9.99", "stock": 1},
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=10,
            )
            r.raise_for_status()
            self.ws.send(orjson.dumps({"type": "pin_product", "streamId": sid, "productId": r.json()["id"]}).decode())
