"""`/livestreams/{id}/moderation`: chat moderation over REST (moderators and admins).

Each action is a command to the stream's actor, like the WebSocket frames of
the same names: it takes effect on every gateway at once and reaches viewers
as an event (`chat_message_deleted`, `user_muted`, `user_unmuted`,
`moderation_updated`). 409 unless the stream is live.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from core import commands as core
from core import limits
from core.results import Result
from gateway.rest.deps import Ctx, Moderator
from gateway.errors import ApiError
from gateway.realtime.protocol import MUTE_MAX_SECONDS
from gateway.rest.livestreams import StreamIdPath, _live_relay
from gateway.rest.types import NOT_BLANK_SCHEMA, Integral, NotBlank, any_of
from runtime.clock import iso, now, now_iso

router = APIRouter(prefix="/livestreams", tags=["moderation"])

ViewerKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:@-]{1,128}$")]
MessageId = Annotated[int, Field(strict=True, ge=1, le=2**53), Integral]


class DeleteBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    messageId: MessageId


class MuteBody(BaseModel):
    """Who: `userId` or `sessionId`, or `messageId` (the sender of that recent
    message); at least one of them (stated in the schema as `anyOf`)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=any_of("userId", "sessionId", "messageId"))
    userId: ViewerKey | None = None
    sessionId: ViewerKey | None = None
    messageId: MessageId | None = None
    durationSeconds: Annotated[int, Field(strict=True, ge=1, le=MUTE_MAX_SECONDS), Integral] = 600

    @model_validator(mode="after")
    def _someone(self) -> "MuteBody":
        if self.userId is None and self.sessionId is None and self.messageId is None:
            raise ValueError("send userId, sessionId or messageId")
        return self


class UnmuteBody(BaseModel):
    """Who: `userId` or `sessionId` (stated in the schema as `anyOf`)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=any_of("userId", "sessionId"))
    userId: ViewerKey | None = None
    sessionId: ViewerKey | None = None

    @model_validator(mode="after")
    def _someone(self) -> "UnmuteBody":
        if self.userId is None and self.sessionId is None:
            raise ValueError("send userId or sessionId")
        return self


class BlockedWordsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    words: Annotated[list[Annotated[str, Field(min_length=1, max_length=50, json_schema_extra=NOT_BLANK_SCHEMA),
                                    NotBlank]],
                     Field(max_length=limits.MAX_BLOCKED_WORDS)]


class SlowModeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    seconds: Annotated[int, Field(strict=True, ge=0, le=limits.MAX_SLOW_MODE_SECONDS), Integral]


class MutedOut(BaseModel):
    userKey: str
    until: str


class ModerationOut(BaseModel):
    slowModeSeconds: int
    blockedWords: list[str]
    muted: list[MutedOut]


class DoneOut(BaseModel):
    ok: bool = True
    seq: int | None = Field(None, description="the stream event the action produced (none when nothing changed)")
    userKey: str | None = None
    until: str | None = None


async def _apply(ctx: Any, stream_id: str, command: core.Command) -> Result:
    relay = await _live_relay(ctx, stream_id)
    result: Result = await relay.submit(command)
    if not result.ok:
        code = (result.data or {}).get("code")
        raise ApiError(404 if code == "not_found" else 409, result.error or "The stream refused this")
    return result


def _done(result: Result) -> DoneOut:
    data = result.data or {}
    return DoneOut(seq=result.seq, userKey=data.get("userKey"), until=data.get("until"))


@router.get("/{stream_id}/moderation", response_model=ModerationOut)
async def get_moderation(stream_id: StreamIdPath, _: Moderator, ctx: Ctx) -> ModerationOut:
    """Slow mode, blocked words and current mutes of a live stream."""
    await _live_relay(ctx, stream_id)
    actor = ctx.directory.stream_client(stream_id)
    if actor is None:
        raise ApiError(409, "This stream is not live")
    snap = await actor.snapshot()  # no answer: `ActorCallError`, answered by `gateway.errors`
    mod = snap.get("moderation") or {}
    stamp = now_iso()
    return ModerationOut(slowModeSeconds=int(mod.get("slowModeSeconds", 0)),
                         blockedWords=list(mod.get("blockedWords", [])),
                         muted=[MutedOut(**m) for m in mod.get("muted", []) if m["until"] > stamp])


@router.post("/{stream_id}/moderation/delete-message", response_model=DoneOut)
async def delete_message(stream_id: StreamIdPath, body: DeleteBody, _: Moderator, ctx: Ctx) -> DoneOut:
    """Delete a chat message: gone from the history (live and stored), viewers get
    `chat_message_deleted {messageId}`. Deleting it again changes nothing."""
    return _done(await _apply(ctx, stream_id, core.DeleteMessage(body.messageId)))


@router.post("/{stream_id}/moderation/mute", response_model=DoneOut)
async def mute(stream_id: StreamIdPath, body: MuteBody, _: Moderator, ctx: Ctx) -> DoneOut:
    """Mute a viewer for `durationSeconds` (default 600): their chat messages are
    refused with an error saying until when. Viewers get `user_muted`."""
    target = body.userId or body.sessionId
    until = iso(now() + timedelta(seconds=body.durationSeconds))
    return _done(await _apply(ctx, stream_id, core.Mute(until=until, target=target,
                                                        message_seq=None if target else body.messageId)))


@router.post("/{stream_id}/moderation/unmute", response_model=DoneOut)
async def unmute(stream_id: StreamIdPath, body: UnmuteBody, _: Moderator, ctx: Ctx) -> DoneOut:
    """Lift a mute now (idempotent)."""
    target = body.userId or body.sessionId
    assert target is not None
    return _done(await _apply(ctx, stream_id, core.Unmute(target)))


@router.put("/{stream_id}/moderation/blocked-words", response_model=DoneOut)
async def set_blocked_words(stream_id: StreamIdPath, body: BlockedWordsBody, _: Moderator, ctx: Ctx) -> DoneOut:
    """Replace the blocked words (whole words or phrases, any case). A viewer's
    message containing one is refused (not masked); moderators' and admins' are not."""
    return _done(await _apply(ctx, stream_id, core.SetBlockedWords(tuple(body.words))))


@router.put("/{stream_id}/moderation/slow-mode", response_model=DoneOut)
async def set_slow_mode(stream_id: StreamIdPath, body: SlowModeBody, _: Moderator, ctx: Ctx) -> DoneOut:
    """One message per viewer every `seconds` (0 turns it off)."""
    return _done(await _apply(ctx, stream_id, core.SetSlowMode(body.seconds)))
