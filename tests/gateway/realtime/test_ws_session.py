"""`WsSession.handle_now`: the frames a watching connection sends most (likes,
chat, pings) are handled straight from the socket, with the same answers as
through the reader; everything else, and every connection that the reader
still times, is left to `handle_text`."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from actors.call_policy import ActorUnavailable
from core.commands import Chat, Command, ToggleLike
from core.results import Result
from gateway.realtime.ws_session import WsSession
from gateway.security.credentials import Claims
from gateway.services.errors import CONFLICT, INVALID, NOT_FOUND, ServiceError
from gateway.streams.hub import Hub
from gateway.streams.stream_relay import StreamRelay
from gateway.transport.connection import Connection
from tests.gateway.transport.test_fanout_protocol import FakeRaw, FakeWebSocket, parse

STREAM = "0123456789abcdef01234567"


class FakeRelay:
    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.taps: list[str] = []

    def submit(self, command: Command) -> asyncio.Future[Result]:
        self.commands.append(command)
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        fut.set_result(Result(ok=True, seq=7))
        return fut

    def toggle_like(self, liker: str, on_error: Any) -> None:
        self.taps.append(liker)


class FakeDirectory:
    def __init__(self, relay: FakeRelay) -> None:
        self._relay = relay
        self.live: dict[str, dict[str, Any]] = {STREAM: {}}

    def relay(self, stream_id: str) -> FakeRelay | None:
        return self._relay if stream_id in self.live else None

    def sole_live(self) -> str | None:
        return STREAM

    async def live_here(self, stream_id: str) -> bool:  # the registry would say what this stand-in holds
        return stream_id in self.live


def session(frame_rate: float = 100.0, like_rate: float = 20.0) -> tuple[WsSession, FakeRaw, FakeRelay]:
    raw = FakeRaw()
    conn = Connection(FakeWebSocket(raw))  # type: ignore[arg-type]  # a stand-in socket: only its scope is read
    relay = FakeRelay()
    settings = SimpleNamespace(
        ws_frame_rate_per_second=frame_rate,
        ws_frame_burst=int(frame_rate * 2),
        ws_chat_rate_per_second=5.0,
        ws_chat_burst=10,
        ws_like_rate_per_second=like_rate,
        ws_like_burst=int(like_rate * 2),
        shop_name="Wren Shop",
    )
    ctx = SimpleNamespace(settings=settings, directory=FakeDirectory(relay), hub=SimpleNamespace())
    return WsSession(conn, ctx), raw, relay  # type: ignore[arg-type]  # a stand-in context: what the session reads


async def watching(s: WsSession) -> None:
    """As after `register`: the reader's next wait has no timer."""
    s.conn.session_id = "sess-1"
    s.conn.watching = STREAM
    await s.handle_text('{"type":"ping"}')


def sent(raw: FakeRaw) -> list[dict[str, Any]]:
    return [orjson.loads(parse(b).data) for b in raw.transport.written]


def text(**frame: Any) -> str:
    return orjson.dumps(frame).decode()


async def test_the_socket_hands_its_messages_to_the_session() -> None:
    s, raw, _ = session()
    assert raw.inbound == s.handle_now


async def test_nothing_is_taken_before_the_reader_stops_timing_the_connection() -> None:
    s, _, relay = session()
    s.conn.session_id, s.conn.watching = "sess-1", STREAM  # set, but the reader still waits with a timer
    assert not s.handle_now(text(type="toggle_like"))
    await watching(s)
    assert s.handle_now(text(type="toggle_like"))
    assert relay.taps == ["sess-1"]


async def test_likes_chat_and_pings_are_handled_at_once() -> None:
    s, raw, relay = session()
    await watching(s)
    raw.transport.written.clear()
    assert s.handle_now(text(type="toggle_like", streamId=STREAM))
    assert s.handle_now(text(type="toggle_like", clientMsgId="t1"))
    assert s.handle_now(text(type="chat_message", message="hi", username="ann", clientMsgId="c1"))
    assert s.handle_now(text(type="ping"))
    assert relay.taps == ["sess-1"]
    assert relay.commands == [
        ToggleLike("sess-1", "t1"),
        Chat(username="ann", message="hi", is_admin=False, session_id="sess-1", client_msg_id="c1"),
    ]
    await asyncio.sleep(0)
    assert [m["type"] for m in sent(raw)] == ["pong", "ack", "ack"]


@pytest.mark.parametrize(
    "frame",
    [
        text(type="register", sessionId="s2"),
        text(type="join_stream", streamId=STREAM),
        text(type="leave_stream"),
        text(type="pin_product", productId="p", name="n", price=1),
        "not json",
        "[1]",
        text(type="nope"),
        text(a=1),
    ],
)
async def test_other_frames_are_left_to_the_reader_without_taking_a_token(frame: str) -> None:
    s, _, relay = session(frame_rate=1.0)  # a burst of 2 frames
    await watching(s)  # takes one
    assert not s.handle_now(frame)
    assert s.handle_now(text(type="ping"))  # the last token was still there
    assert relay.taps == [] and relay.commands == []


@pytest.mark.parametrize(
    "frame",
    [
        text(type="toggle_like", streamId="not-a-stream"),
        text(type="toggle_like", sessionId={"$ne": ""}),
        text(type="toggle_like", **{"$where": "1"}),
        text(type="toggle_like", clientMsgId=""),
        text(type="toggle_like", streamId="ffffffffffffffffffffffff"),
        text(type="chat_message"),
        text(type="chat_message", message=5),
    ],
)
async def test_refusals_are_the_readers_refusals(frame: str) -> None:
    now, now_raw, now_relay = session()
    later, later_raw, later_relay = session()
    await watching(now)
    await watching(later)
    now_raw.transport.written.clear()
    later_raw.transport.written.clear()
    assert now.handle_now(frame)
    await later.handle_text(frame)
    assert sent(now_raw) == sent(later_raw) and sent(now_raw)[0]["type"] == "error"
    assert (now_relay.taps, now_relay.commands) == (later_relay.taps, later_relay.commands) == ([], [])


async def test_limits_hold_on_the_immediate_path() -> None:
    s, raw, relay = session(like_rate=1.0)  # a burst of 2 likes
    await watching(s)
    raw.transport.written.clear()
    for _ in range(5):
        assert s.handle_now(text(type="toggle_like"))
    assert relay.taps == ["sess-1"] * 2
    assert [m.get("code") for m in sent(raw)] == ["rate_limited"]


async def test_a_connection_that_stops_watching_goes_back_to_the_reader() -> None:
    s, _, _ = session()
    await watching(s)
    s.conn.watching = None
    assert not s.handle_now(text(type="toggle_like"))


async def test_a_services_refusal_is_an_error_frame_with_its_code() -> None:
    s, raw, _ = session()
    raw.transport.written.clear()
    s.refused(ServiceError(NOT_FOUND, "Product p-boot does not exist"))
    s.refused(ServiceError(INVALID, "send userId or sessionId"))
    s.refused(ServiceError("slow_mode", "Slow mode: wait 3 s", retryAfter=3))
    s.refused(ServiceError(CONFLICT, "being created: retry shortly", retry_after=1))
    assert sent(raw) == [
        {"type": "error", "message": "Product p-boot does not exist", "code": "not_found"},
        {
            "type": "error",
            "message": "send userId or sessionId",
            "code": "invalid_frame",
        },  # as a frame failing its schema
        {"type": "error", "message": "Slow mode: wait 3 s", "code": "slow_mode", "retryAfter": 3},
        {"type": "error", "message": "being created: retry shortly", "code": "conflict", "retryAfter": 1},
    ]


async def test_moderation_from_someone_who_may_not_is_forbidden_before_any_service() -> None:
    s, raw, relay = session()
    await watching(s)
    raw.transport.written.clear()
    await s.handle_text(text(type="set_slow_mode", seconds=5))
    assert [(m["type"], m["code"]) for m in sent(raw)] == [("error", "forbidden")] and relay.commands == []


async def test_an_actor_that_does_not_answer_is_an_error_frame_and_the_connection_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s, raw, _ = session()
    s.conn.is_admin = True

    async def unavailable(stream_id: str) -> None:
        raise ActorUnavailable("the registry is restarting; try again", "registry", "stop_stream")

    # The fake directory has no stop_stream of its own: this test gives it one that fails.
    monkeypatch.setattr(s.ctx.directory, "stop_stream", unavailable, raising=False)
    raw.transport.written.clear()
    await s.handle_text(text(type="stop_stream", streamId=STREAM))
    await s.handle_text(text(type="ping"))
    assert [(m["type"], m.get("code"), m.get("retryAfter")) for m in sent(raw)] == [
        ("error", "unavailable", 1),
        ("pong", None, None),
    ]


async def test_a_full_outbox_is_an_error_frame_busy_with_retry_after_for_chat_and_likes() -> None:
    s, raw, _ = session()
    relay = StreamRelay(STREAM, "gw1", Hub(), lambda: None, outbox_max=1)  # no actor: nothing leaves
    s.ctx.directory = FakeDirectory(relay)  # type: ignore[assignment, arg-type]  # a real relay behind the stand-in
    await watching(s)
    raw.transport.written.clear()
    assert s.handle_now(text(type="chat_message", message="queued", username="ann", clientMsgId="c1"))
    assert s.handle_now(text(type="chat_message", message="refused", username="ann", clientMsgId="c2"))
    assert s.handle_now(text(type="toggle_like", streamId=STREAM))
    await asyncio.sleep(0)
    errors = [m for m in sent(raw) if m["type"] == "error"]
    assert [(m["code"], m["retryAfter"] > 0) for m in errors] == [("busy", True), ("busy", True)]
    assert relay.queued == 1  # the first chat waits for the actor; the refused ones took no room
    await relay.close()


async def test_a_registration_waits_for_the_registry_only_so_long(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.realtime import ws_session

    monkeypatch.setattr(ws_session, "SYNC_WAIT_S", 0.05)
    s, raw, _ = session()
    synced = asyncio.Event()
    s.ctx.directory.synced = synced  # the stand-in directory, as never synced
    assert await s._synced() is False  # told at once to come back, not held
    [frame] = sent(raw)
    assert (frame["type"], frame["code"], frame["retryAfter"]) == (
        "error",
        "unavailable",
        ws_session.SYNC_RETRY_AFTER_S,
    )
    synced.set()
    assert await s._synced() is True
    assert len(sent(raw)) == 1


async def test_a_logged_in_viewer_chats_under_the_accounts_name_whatever_the_frame_says() -> None:
    s, _, relay = session()
    await watching(s)
    s.conn.claims = Claims(user_id="u" * 24, role="customer", email="ann@example.com", name="Ann Lee")
    await s.handle_text(text(type="chat_message", message="hi", username="Admin"))
    await s.handle_text(text(type="chat_message", message="again"))
    assert [(c.username, c.user_id) for c in relay.commands if isinstance(c, Chat)] == [
        ("Ann Lee", "u" * 24),
        ("Ann Lee", "u" * 24),
    ]


@pytest.mark.parametrize("name", ["Admin", "S u p p o r t", "m0derator", "wren shop"])
async def test_a_guest_cannot_take_a_staff_name(name: str) -> None:
    s, raw, relay = session()
    await watching(s)
    raw.transport.written.clear()
    assert s.handle_now(text(type="chat_message", message="hi", username=name))
    await s.handle_text(text(type="chat_message", message="hi", username=name))
    assert [(m["type"], m["code"]) for m in sent(raw)] == [("error", "name_reserved")] * 2
    assert relay.commands == []
    await s.handle_text(text(type="chat_message", message="hi", username="Bob"))
    assert [c.username for c in relay.commands if isinstance(c, Chat)] == ["Bob"]


class WatchOnlyHub:
    def watch(self, conn: Connection, stream_id: str) -> bool:
        conn.watching = stream_id
        return False

    def unwatch(self, conn: Connection) -> None:
        conn.watching = None


async def test_a_viewer_whose_stream_ended_is_never_routed_to_another_stream() -> None:
    other = "fedcba9876543210fedcba98"
    s, raw, relay = session()
    s.ctx.hub = WatchOnlyHub()  # type: ignore[assignment]  # a stand-in hub: who watches what, nothing else
    s.conn.session_id = "sess-1"
    s.watch(STREAM)
    # The stream ends (the directory unwatches its viewers); another one is the only one live.
    s.conn.watching = None
    s.ctx.directory.live = {other: {}}
    s.ctx.directory.sole_live = lambda: other  # type: ignore[method-assign]  # the stand-in's only live stream
    raw.transport.written.clear()
    for frame in (text(type="chat_message", message="hi"), text(type="toggle_like", clientMsgId="t1")):
        await s.handle_text(frame)
    assert [(m["code"], m["streamId"]) for m in sent(raw)] == [("stream_ended", STREAM)] * 2
    assert relay.commands == [] and relay.taps == []
    # Saying which stream still works, and after leaving on purpose the sole stream is used again.
    await s.handle_text(text(type="chat_message", message="there", streamId=other))
    await s.handle_text(text(type="leave_stream"))
    await s.handle_text(text(type="chat_message", message="sole"))
    assert [c.message for c in relay.commands if isinstance(c, Chat)] == ["there", "sole"]


@pytest.mark.parametrize(
    "frame",
    [
        text(type="chat_message", message="hi", username="Admin", clientMsgId="c9"),
        text(type="chat_message", message="hi", colour="red", clientMsgId="c9"),
        text(type="toggle_like", streamId="ffffffffffffffffffffffff", clientMsgId="c9"),
    ],
)
async def test_a_refused_frame_with_a_client_id_is_answered_with_it(frame: str) -> None:
    """Its sender waits for an `ack`: the refusal says which message will not get one."""
    for through_reader in (False, True):
        s, raw, relay = session()
        await watching(s)
        raw.transport.written.clear()
        if through_reader:
            await s.handle_text(frame)
        else:
            assert s.handle_now(frame)
        [answer] = sent(raw)
        assert answer["type"] == "error" and answer["clientMsgId"] == "c9", answer
        assert relay.commands == []
