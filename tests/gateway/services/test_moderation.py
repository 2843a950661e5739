"""The moderation service: one set of limits (the request models that REST's
bodies and the WebSocket's frames both are), and actions that reach the
stream as commands, answered once stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from core.commands import Chat, Mute
from core.limits import MAX_BLOCKED_WORDS, MAX_SLOW_MODE_SECONDS
from gateway.realtime import protocol
from gateway.rest import moderation as rest
from gateway.security.credentials import Claims
from gateway.services import moderation
from gateway.services.errors import NOT_FOUND, ServiceError
from gateway.services.moderation import (
    BlockedWordsRequest,
    DeleteRequest,
    Done,
    ModerationService,
    MuteRequest,
    SlowModeRequest,
    UnmuteRequest,
)
from gateway.services.stream_commands import LiveStreams
from tests.gateway.services.conftest import Live

# (frame type, REST body model, input): each invalid in itself.
INVALID: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
    ("mute_user", rest.MuteBody, {}),
    ("mute_user", rest.MuteBody, {"userId": "u1", "durationSeconds": moderation.MUTE_MAX_SECONDS + 1}),
    ("mute_user", rest.MuteBody, {"userId": "u1", "durationSeconds": 0}),
    ("mute_user", rest.MuteBody, {"userId": "u1", "durationSeconds": 1.5}),
    ("mute_user", rest.MuteBody, {"userId": "u1", "durationSeconds": "60"}),
    ("mute_user", rest.MuteBody, {"sessionId": "s" * 129}),
    ("mute_user", rest.MuteBody, {"messageId": 0}),
    ("unmute_user", rest.UnmuteBody, {}),
    ("unmute_user", rest.UnmuteBody, {"userId": ""}),
    ("delete_message", rest.DeleteBody, {"messageId": 2**53 + 1}),
    ("delete_message", rest.DeleteBody, {"messageId": True}),
    ("set_blocked_words", rest.BlockedWordsBody, {"words": ["   "]}),
    ("set_blocked_words", rest.BlockedWordsBody, {"words": ["w" * 51]}),
    ("set_blocked_words", rest.BlockedWordsBody, {"words": [f"w{i}" for i in range(MAX_BLOCKED_WORDS + 1)]}),
    ("set_slow_mode", rest.SlowModeBody, {"seconds": MAX_SLOW_MODE_SECONDS + 1}),
    ("set_slow_mode", rest.SlowModeBody, {"seconds": -1}),
]


def problems(e: ValidationError) -> list[str]:
    return [err["msg"] for err in e.errors()]


@pytest.mark.parametrize("kind, body, data", INVALID)
def test_rest_and_the_websocket_refuse_the_same_input_with_the_same_words(
    kind: str, body: type[BaseModel], data: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError) as by_rest:
        body.model_validate_json(orjson.dumps(data))
    with pytest.raises(protocol.ProtocolError) as by_ws:
        protocol.parse_frame(orjson.dumps({"type": kind, **data}))
    first = problems(by_rest.value)[0]
    assert first in str(by_ws.value) and str(by_ws.value).startswith(f"Invalid {kind}: ")


@pytest.mark.parametrize(
    "kind, body, data",
    [
        ("mute_user", rest.MuteBody, {"userId": "u1", "durationSeconds": 600.0}),
        ("mute_user", rest.MuteBody, {"sessionId": "an app's session: any 128 chars", "durationSeconds": 1}),
        ("mute_user", rest.MuteBody, {"messageId": 7}),
        ("set_blocked_words", rest.BlockedWordsBody, {"words": ["  spam ", "scam link"]}),
        ("set_slow_mode", rest.SlowModeBody, {"seconds": MAX_SLOW_MODE_SECONDS}),
    ],
)
def test_and_accept_the_same_input_as_the_same_request(kind: str, body: type[BaseModel], data: dict[str, Any]) -> None:
    by_rest = body.model_validate_json(orjson.dumps(data))
    by_ws = protocol.parse_frame(orjson.dumps({"type": kind, **data}))
    assert by_ws.model_dump(exclude={"type", "streamId"}) == by_rest.model_dump()


def test_who_may_moderate() -> None:
    def claims(role: str) -> Claims:
        return Claims(user_id="u", email="u@example.com", role=role, name="n")

    assert moderation.may_moderate(claims("admin")) and moderation.may_moderate(claims("moderator"))
    assert not moderation.may_moderate(claims("customer")) and not moderation.may_moderate(None)


def service(live: Live) -> ModerationService:
    return ModerationService(LiveStreams(live.directory, live.streams))


async def said(live: Live, stream: str, session: str, text: str) -> int:
    """A viewer's chat message, through the stream's relay; its id."""
    result = await live.directory.relays[stream].submit(
        Chat(username="v", message=text, is_admin=False, session_id=session, user_id=None)
    )
    assert result.ok and result.seq is not None
    return result.seq


async def test_mute_by_message_mutes_its_sender_until_the_time_asked(live: Live) -> None:
    stream = await live.stream()
    mods = service(live)
    seq = await said(live, stream, "viewer-a", "buy my stuff")
    before = datetime.now(UTC)
    done = await (await mods.mute(stream, MuteRequest(messageId=seq, durationSeconds=120))).stored()
    assert done.user_key == "viewer-a" and done.seq is not None and done.until is not None
    until = datetime.fromisoformat(done.until)
    assert before + timedelta(seconds=119) <= until <= datetime.now(UTC) + timedelta(seconds=121)
    refused = await live.directory.relays[stream].submit(
        Chat(username="v", message="again", is_admin=False, session_id="viewer-a", user_id=None)
    )
    assert not refused.ok
    assert await (await mods.unmute(stream, UnmuteRequest(sessionId="viewer-a"))).stored() == Done(
        seq=done.seq + 1, user_key="viewer-a"
    )  # the refused message made no event
    assert await (await mods.unmute(stream, UnmuteRequest(sessionId="viewer-a"))).stored() == Done(seq=None)


async def test_a_user_id_wins_over_a_session_and_a_message(live: Live) -> None:
    stream = await live.stream()
    await (await service(live).mute(stream, MuteRequest(userId="u1", sessionId="s1", messageId=99))).stored()
    mute = live.actors[stream].commands[-1]
    assert isinstance(mute, Mute) and (mute.target, mute.message_seq) == ("u1", None)


async def test_delete_slow_mode_and_blocked_words_reach_the_stream(live: Live) -> None:
    stream = await live.stream()
    mods = service(live)
    seq = await said(live, stream, "viewer-a", "hello")
    assert (await (await mods.delete_message(stream, DeleteRequest(messageId=seq))).stored()).seq == seq + 1
    assert (await (await mods.delete_message(stream, DeleteRequest(messageId=seq))).stored()).seq is None
    await (await mods.set_slow_mode(stream, SlowModeRequest(seconds=30))).stored()
    await (await mods.set_blocked_words(stream, BlockedWordsRequest(words=["  Spam "]))).stored()
    state = live.actors[stream].state
    assert (state.slow_mode, state.blocked_words) == (30, ["spam"])


async def test_the_streams_refusals_keep_its_code(live: Live) -> None:
    stream = await live.stream()
    mods = service(live)
    with pytest.raises(ServiceError) as never:
        await (await mods.delete_message(stream, DeleteRequest(messageId=42))).stored()
    with pytest.raises(ServiceError) as not_recent:
        await (await mods.mute(stream, MuteRequest(messageId=42))).stored()
    assert (never.value.code, never.value.message) == (NOT_FOUND, "message 42 does not exist in this stream")
    assert not_recent.value.code == NOT_FOUND


async def test_nothing_is_queued_for_a_stream_that_is_not_live(live: Live) -> None:
    scheduled = await live.stream(live=False)
    with pytest.raises(ServiceError) as refused:
        await service(live).set_slow_mode(scheduled, SlowModeRequest(seconds=5))
    assert refused.value.code == "not_live"
