"""Property-based fuzzing of the WebSocket protocol against a live gateway.

Hypothesis sends thousands of random and mutated frames (valid frames with
fields changed, random JSON, huge strings, binary frames, deep nesting,
operators, oversized frames) on one connection while two normal viewers watch
a live stream. After every example the fuzzing connection must still answer a
`ping` with a `pong`, or have been closed with a documented code (1008, 1009,
1013; it then reconnects). At the end: the gateway is healthy, the viewers got
nothing but legitimate events of their stream, and the stream's numbers are
exact: chat counted once per message the viewers saw.

First as a guest (never logged in): nothing but a guest's own chat and likes
may change; the pins set by the admin before the fuzz (the control sequence),
the moderation settings and the set of live streams stay as they were, and a
viewer's only `pinned_products_updated` is the one of its join. Then logged in
as an admin, with admin and moderation frames aimed at real targets: those may
change the stream, within the rules (a pin carries the catalogue's price).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = [pytest.mark.system, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

DOCUMENTED_CLOSES = {1008, 1009, 1013}
TIME_BUDGET_S = 45.0
ADMIN_TIME_BUDGET_S = 25.0
LEGITIMATE = {  # what a viewer may get while guests fuzz: the join's snapshot, chat and counts
    "registered",
    "stream_started",
    "pinned_products_updated",
    "chat_history",
    "stream_update",
    "chat_message",
    "pong",
    "ack",
}
ADMIN_EVENTS = {"pinned_products_updated", "chat_message_deleted", "user_muted", "user_unmuted", "moderation_updated"}

STREAM_PLACEHOLDER = "@stream@"
SPARE_PLACEHOLDER = "@spare@"  # a catalogue product, not pinned before the fuzz
PINNED_PLACEHOLDER = "@pinned@"  # the product the admin pinned before the fuzz
TEMPLATES: list[dict[str, Any]] = [
    {"type": "register", "sessionId": "fuzz-1", "streamId": STREAM_PLACEHOLDER},
    {"type": "register", "sessionId": "fuzz-2", "token": "x.y.z", "protocol": 2, "resume": {"seq": 1, "epoch": "e"}},
    {"type": "register_admin", "userId": "root", "token": "eyJhbGciOiJub25lIn0.e30."},
    {"type": "join_stream", "streamId": STREAM_PLACEHOLDER},
    {"type": "leave_stream"},
    {"type": "start_stream", "title": "hijack"},
    {"type": "stop_stream", "streamId": STREAM_PLACEHOLDER},
    {"type": "chat_message", "message": "hello", "username": "fuzz", "isAdmin": True, "timestamp": 1},
    {"type": "chat_message", "message": "acked", "clientMsgId": "c1", "streamId": STREAM_PLACEHOLDER},
    {"type": "toggle_like", "userId": "someone-else", "sessionId": "fuzz-1"},
    {"type": "pin_product", "productId": SPARE_PLACEHOLDER, "name": "n", "price": "1.00"},
    {"type": "unpin_product", "productId": PINNED_PLACEHOLDER},
    {"type": "delete_message", "messageId": 1},
    {"type": "mute_user", "sessionId": "viewer-a", "durationSeconds": 600},
    {"type": "set_slow_mode", "seconds": 3600},
    {"type": "set_blocked_words", "words": ["hello"]},
    {"type": "ping"},
]
# As an admin: no start or stop (an admin may end the fuzzed stream or start others; the
# authorisation matrix covers those), and more frames aimed at real targets.
ADMIN_TEMPLATES: list[dict[str, Any]] = [
    *(t for t in TEMPLATES if t["type"] not in ("start_stream", "stop_stream")),
    {"type": "pin_product", "productId": PINNED_PLACEHOLDER, "streamId": STREAM_PLACEHOLDER, "displayOrder": 3},
    {"type": "delete_message", "messageId": 2, "streamId": STREAM_PLACEHOLDER},
    {"type": "mute_user", "messageId": 2, "durationSeconds": 5, "streamId": STREAM_PLACEHOLDER},
    {"type": "unmute_user", "sessionId": "viewer-c", "streamId": STREAM_PLACEHOLDER},
    {"type": "set_slow_mode", "seconds": 0, "streamId": STREAM_PLACEHOLDER},
    {"type": "set_blocked_words", "words": [], "streamId": STREAM_PLACEHOLDER},
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=15,
)
operators = st.sampled_from([{"$gt": ""}, {"$ne": None}, {"$where": "sleep(1000)"}, {"$regex": ".*"}, {"$in": []}])


@st.composite
def mutated(draw: st.DrawFn, templates: list[dict[str, Any]]) -> str:
    frame = dict(draw(st.sampled_from(templates)))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*sorted(frame), "streamId", "message", "extra", "$where"]))
        action = draw(st.sampled_from(["replace", "delete", "operator", "huge"]))
        if action == "delete":
            frame.pop(key, None)
        elif action == "operator":
            frame[key] = draw(operators)
        elif action == "huge":
            frame[key] = "x" * draw(st.integers(1000, 20_000))
        else:
            frame[key] = draw(json_values)
    return json.dumps(frame)


@st.composite
def deep(draw: st.DrawFn) -> str:
    n = draw(st.integers(10, 3000))
    return '{"type":"chat_message","message":"m","x":' + "[" * n + "]" * n + "}"


def frames_from(templates: list[dict[str, Any]]) -> st.SearchStrategy[str | bytes]:
    return st.one_of(
        mutated(templates),
        mutated(templates),
        mutated(templates),
        json_values.map(json.dumps),
        st.text(max_size=200),
        st.binary(max_size=200),
        deep(),
        st.just(json.dumps({"type": "chat_message", "message": "y" * 70_000})),  # over MAX_FRAME_BYTES: 1009
    )


frames = frames_from(TEMPLATES)
admin_frames = frames_from(ADMIN_TEMPLATES)


class Viewer:
    """A normal app connection that watches the stream and keeps every frame."""

    def __init__(self, url: str, session: str, stream_id: str, token: str | None = None) -> None:
        self.frames: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        self.ws = connect(url, max_size=2**22)
        frame = {"type": "register", "sessionId": session, "streamId": stream_id}
        if token is not None:
            frame["token"] = token
        self.ws.send(json.dumps(frame))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                with self.arrived:
                    self.frames.append(json.loads(raw))
                    self.arrived.notify_all()
        except ConnectionClosed:
            pass

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """The first frame that matches, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for frame in self.frames:
                    if predicate(frame):
                        return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching frame within {timeout} s; got {self.frames[-5:]}")
                self.arrived.wait(remaining)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == type_]

    def close(self) -> None:
        self.ws.close()
        self.thread.join(5)


class Fuzzer:
    """Sends the fuzzed frames on one connection, reconnecting after a documented close.
    With `admin_token`, every connection is an admin's (`register_admin` first, answered
    `admin_registered`), so the fuzz reaches the admin and moderator paths."""

    def __init__(self, url: str, fuzzed: Fuzzed, admin: bool = False) -> None:
        self.url, self.stream_id = url, fuzzed.stream_id
        self.admin_token = fuzzed.token if admin else None
        self.targets = {
            STREAM_PLACEHOLDER: fuzzed.stream_id,
            SPARE_PLACEHOLDER: fuzzed.spare["id"],
            PINNED_PLACEHOLDER: fuzzed.pinned["id"],
        }
        self.ws: ClientConnection | None = None
        self.sent = 0
        self.oversized = False  # a frame over the limit went out on this connection
        self.closes: dict[int, int] = {}
        self.started = time.monotonic()

    def conn(self) -> ClientConnection:
        if self.ws is None:
            self.ws = connect(self.url, max_size=2**22, close_timeout=1)
            if self.admin_token is not None:
                self.ws.send(json.dumps({"type": "register_admin", "userId": "fuzz", "token": self.admin_token}))
                deadline = time.monotonic() + 10
                while json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))["type"] != (
                    "admin_registered"
                ):
                    pass
        return self.ws

    def send(self, frame: str | bytes) -> None:
        ws = self.conn()
        if isinstance(frame, str):
            for placeholder, target in self.targets.items():
                frame = frame.replace(placeholder, target)
        if len(frame) > 65536:
            self.oversized = True
        try:
            ws.send(frame)
            self.sent += 1
        except ConnectionClosed:
            self._closed(ws)

    def _closed(self, ws: ClientConnection) -> None:
        code = ws.close_code if ws.close_code is not None else -1
        if code == 1006 and self.oversized:
            # The server closed with 1009 and dropped the TCP connection while
            # this client was still writing: the reset can overtake the close frame.
            code = 1009
        self.closes[code] = self.closes.get(code, 0) + 1
        assert code in DOCUMENTED_CLOSES, f"fuzzing connection closed with {code} ({ws.close_reason!r})"
        self.ws = None
        self.oversized = False

    def check_usable(self) -> None:
        """A pong comes back (rate-limited pings are retried), or the
        connection was closed with a documented code."""
        ws = self.ws
        if ws is None:
            return
        deadline = time.monotonic() + 10
        try:
            ws.send('{"type":"ping"}')
            while time.monotonic() < deadline:
                raw = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
                message = json.loads(raw)
                assert isinstance(message, dict) and isinstance(message.get("type"), str), raw
                if message["type"] == "pong":
                    return
                if message["type"] == "error" and message.get("code") == "rate_limited":
                    time.sleep(min(2.0, float(message.get("retryAfter", 1))))
                    ws.send('{"type":"ping"}')
        except ConnectionClosed:
            self._closed(ws)
            return
        raise AssertionError("the fuzzing connection got stuck: no pong within 10 s")

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None


@dataclass
class Fuzzed:
    """The live stream under fuzz, an admin's REST headers and token, and the products of
    the control sequence: `pinned` is pinned by the admin before any fuzz, `spare` is not
    (the fuzz's pin and unpin frames aim at them, so a guest's that took effect would show)."""

    stream_id: str
    auth: dict[str, str]
    token: str
    pinned: dict[str, Any]
    spare: dict[str, Any]


@pytest.fixture(scope="module")
def stream(gateway_url: str) -> Iterator[Fuzzed]:
    with httpx.Client(base_url=gateway_url, timeout=30) as http:
        token = http.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        for s in http.get("/livestreams/active", params={"limit": 100}).json():
            http.post(f"/livestreams/{s['id']}/stop", headers=auth)
        products = []
        for price in ("4.00", "6.50"):
            r = http.post("/products", json={"name": f"fuzz {price}", "price": price, "stock": 5}, headers=auth)
            assert r.status_code == 201, r.text
            products.append(r.json())
        sid = http.post("/livestreams", json={"title": "Fuzzed"}, headers=auth).json()["id"]
        assert http.post(f"/livestreams/{sid}/start", headers=auth).status_code == 200
        r = http.post(f"/livestreams/{sid}/pin", json={"productId": products[0]["id"]}, headers=auth)
        assert r.status_code == 200, r.text
        yield Fuzzed(sid, auth, token, products[0], products[1])
        http.post(f"/livestreams/{sid}/stop", headers=auth)


def fuzz(fuzzer: Fuzzer, strategy: st.SearchStrategy[str | bytes], budget_s: float, max_examples: int) -> None:
    """Send `strategy`'s frames in batches; after each batch the connection must answer a ping."""

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(strategy, min_size=1, max_size=12))
    def property_(batch: list[str | bytes]) -> None:
        if time.monotonic() - fuzzer.started > budget_s:
            return  # bounded in time: the remaining examples pass trivially
        for frame in batch:
            fuzzer.send(frame)
        fuzzer.check_usable()

    property_()


def chat_ids(viewer: Viewer) -> set[int]:
    return {f["id"] for f in viewer.of_type("chat_message")}


def check_viewers(viewers: list[Viewer], sid: str, legitimate: set[str]) -> None:
    """Each viewer got only `legitimate` events of its own stream, in order, and every chat
    message as an ordinary customer's (never flagged as an admin's by the sender)."""
    for viewer in viewers:
        assert viewer.frames, "a viewer got nothing"
        for frame in viewer.frames:
            assert frame.get("type") in legitimate, frame
            if frame["type"] not in ("registered", "pong"):
                assert frame.get("streamId") == sid, frame
        seqs = [f["seq"] for f in viewer.frames if f["type"] in ("chat_message", "stream_update")]
        assert seqs == sorted(seqs), "events out of order"
        assert len(viewer.of_type("stream_started")) == 1, "a stream started or restarted under fuzz"


def test_random_and_mutated_frames_break_nothing(gateway_url: str, ws_url: str, stream: Fuzzed) -> None:
    sid = stream.stream_id
    with httpx.Client(base_url=gateway_url, timeout=10) as http:
        before = http.get(f"/livestreams/{sid}").json()
        moderation = http.get(f"/livestreams/{sid}/moderation", headers=stream.auth).json()
    assert [p["productId"] for p in before["pinnedProducts"]] == [stream.pinned["id"]]
    viewers = [Viewer(ws_url, "viewer-a", sid), Viewer(ws_url, "viewer-b", sid)]
    fuzzer = Fuzzer(ws_url, stream)
    try:
        fuzz(fuzzer, frames, TIME_BUDGET_S, 700)
        assert fuzzer.sent >= 1000, f"only {fuzzer.sent} frames sent"
        fuzzer.close()
        with httpx.Client(base_url=gateway_url, timeout=10) as http:
            assert http.get("/health").json() == {"status": "ok"}
            state, control = stored_and_seen(ws_url, stream, viewers, http)
            assert state["status"] == "live"
            assert state["likes"] == len(state["likedBy"]) == len(set(state["likedBy"]))
            assert state["viewerCount"] >= 2
            # The unauthenticated fuzz changed nothing but what a guest may: its own chat and likes.
            assert state["pinnedProducts"] == before["pinnedProducts"]
            assert http.get(f"/livestreams/{sid}/moderation", headers=stream.auth).json() == moderation
            assert [s["id"] for s in http.get("/livestreams/active", params={"limit": 100}).json()] == [sid]
            assert state["chatCount"] - before["chatCount"] == len(chat_ids(viewers[0])) == len(chat_ids(viewers[1]))
        check_viewers(viewers, sid, LEGITIMATE)
        for viewer in viewers:
            pins = viewer.of_type("pinned_products_updated")  # the one of its join, none since
            assert [f["pinnedProducts"] for f in pins] == [before["pinnedProducts"]], pins
            chat = [f for f in viewer.of_type("chat_message") if f["message"] != control]
            assert all(isinstance(f["message"], str) and f["isAdmin"] is False for f in chat)
    finally:
        fuzzer.close()
        for viewer in viewers:
            viewer.close()
    with httpx.Client(base_url=gateway_url, timeout=10) as http:
        for _ in range(50):
            if http.get(f"/livestreams/{sid}").json()["viewerCount"] == 0:
                break
            time.sleep(0.2)
        assert http.get(f"/livestreams/{sid}").json()["viewerCount"] == 0
    print(f"fuzz: {fuzzer.sent} frames, closes {fuzzer.closes}")


def stored_and_seen(
    ws_url: str, stream: Fuzzed, viewers: list[Viewer], http: httpx.Client
) -> tuple[dict[str, Any], str]:
    """The stream's state once every command sent so far is stored and every viewer has its
    events: an admin's chat message, acknowledged once stored after all of them, reaches
    both viewers (events are ordered). That message (its text returned with the state) counts
    in `chatCount` like the others."""
    text = f"control-{time.monotonic_ns()}"
    with connect(ws_url, max_size=2**22) as control:
        control.send(json.dumps({"type": "register", "sessionId": "fuzz-control", "token": stream.token}))
        control.send(
            json.dumps({"type": "chat_message", "message": text, "clientMsgId": text, "streamId": stream.stream_id})
        )
        deadline = time.monotonic() + 10
        while (answer := json.loads(control.recv(timeout=max(0.1, deadline - time.monotonic())))).get(
            "clientMsgId"
        ) != text:
            pass
        assert answer["type"] == "ack", answer
        for viewer in viewers:
            viewer.wait_for(lambda f: f.get("type") == "chat_message" and f.get("message") == text)
    return dict(http.get(f"/livestreams/{stream.stream_id}").json()), text


def test_fuzzing_as_an_admin_breaks_nothing(gateway_url: str, ws_url: str, stream: Fuzzed) -> None:
    """The same fuzz on admin connections, with admin and moderation frames aimed at real
    targets: the admin's frames may change the stream (that is their job), but the gateway
    stays healthy, viewers get only events of their stream in order, every pin carries the
    catalogue's name and price whatever the frame said, and chat is counted exactly."""
    sid = stream.stream_id
    with httpx.Client(base_url=gateway_url, timeout=10) as http:
        before = http.get(f"/livestreams/{sid}").json()
    viewers = [Viewer(ws_url, "viewer-c", sid), Viewer(ws_url, "viewer-d", sid)]
    fuzzer = Fuzzer(ws_url, stream, admin=True)
    try:
        fuzz(fuzzer, admin_frames, ADMIN_TIME_BUDGET_S, 400)
        assert fuzzer.sent >= 300, f"only {fuzzer.sent} frames sent"
        fuzzer.close()
        with httpx.Client(base_url=gateway_url, timeout=10) as http:
            assert http.get("/health").json() == {"status": "ok"}
            state, _ = stored_and_seen(ws_url, stream, viewers, http)
            assert state["status"] == "live"
            assert state["likes"] == len(state["likedBy"]) == len(set(state["likedBy"]))
            assert [s["id"] for s in http.get("/livestreams/active", params={"limit": 100}).json()] == [sid]
            assert state["chatCount"] - before["chatCount"] == len(chat_ids(viewers[0])) == len(chat_ids(viewers[1]))
            for pin in state["pinnedProducts"]:
                assert pin["productId"] in (stream.pinned["id"], stream.spare["id"]), pin
                product = http.get(f"/products/{pin['productId']}").json()
                assert (pin["name"], pin["price"]) == (product["name"], product["price"]), pin
        check_viewers(viewers, sid, LEGITIMATE | ADMIN_EVENTS)
        for viewer in viewers:
            by_admin = [f for f in viewer.frames if f["type"] in ADMIN_EVENTS]
            assert len(by_admin) > 1, (
                "no admin frame took effect (the first is the join's pins): the fuzz did not run as an admin"
            )
    finally:
        fuzzer.close()
        for viewer in viewers:
            viewer.close()
        with httpx.Client(base_url=gateway_url, timeout=10) as http:  # what the fuzz may have set, undone
            http.put(f"/livestreams/{sid}/moderation/slow-mode", json={"seconds": 0}, headers=stream.auth)
            http.put(f"/livestreams/{sid}/moderation/blocked-words", json={"words": []}, headers=stream.auth)
    print(f"admin fuzz: {fuzzer.sent} frames, closes {fuzzer.closes}")
