"""`/livestreams/{id}/moderation`: chat moderation over REST (moderators and admins).

Each action is the moderation service's (`gateway/services/moderation.py`),
as are the WebSocket frames of the same names: the same limits, the same
refusals. It takes effect on every gateway at once and reaches viewers
as an event (`chat_message_deleted`, `user_muted`, `user_unmuted`,
`moderation_updated`). 409 unless the stream is live.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import ApiError
from gateway.rest.deps import Ctx, Moderator
from gateway.rest.exact_json import ExactJsonRoute
from gateway.rest.livestreams import StreamIdPath, _live_relay
from gateway.rest.types import any_of
from gateway.services import moderation
from gateway.services.moderation import Done
from gateway.services.stream_commands import Queued
from runtime.clock import now_iso

router = APIRouter(prefix="/livestreams", tags=["moderation"], route_class=ExactJsonRoute)


# The bodies are the moderation service's requests: the same fields, limits and
# messages as the WebSocket's frames. Only the schema's statement of "one of" is REST's.


class DeleteBody(moderation.DeleteRequest):
    pass


class MuteBody(moderation.MuteRequest):
    """Who: `userId` or `sessionId`, or `messageId` (the sender of that recent
    message); at least one of them (stated in the schema as `anyOf`)."""

    model_config = ConfigDict(json_schema_extra=any_of("userId", "sessionId", "messageId"))


class UnmuteBody(moderation.UnmuteRequest):
    """Who: `userId` or `sessionId` (stated in the schema as `anyOf`)."""

    model_config = ConfigDict(json_schema_extra=any_of("userId", "sessionId"))


class BlockedWordsBody(moderation.BlockedWordsRequest):
    pass


class SlowModeBody(moderation.SlowModeRequest):
    pass


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


async def _done(queued: Queued[Done]) -> DoneOut:
    done = await queued.stored()
    return DoneOut(seq=done.seq, userKey=done.user_key, until=done.until)


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
    return ModerationOut(
        slowModeSeconds=int(mod.get("slowModeSeconds", 0)),
        blockedWords=list(mod.get("blockedWords", [])),
        muted=[MutedOut(**m) for m in mod.get("muted", []) if m["until"] > stamp],
    )


@router.post("/{stream_id}/moderation/delete-message", response_model=DoneOut)
async def delete_message(stream_id: StreamIdPath, body: DeleteBody, _: Moderator, ctx: Ctx) -> DoneOut:
    """Delete a chat message: gone from the history (live and stored), viewers get
    `chat_message_deleted {messageId}`. Deleting it again changes nothing."""
    return await _done(await ctx.moderation.delete_message(stream_id, body))


@router.post("/{stream_id}/moderation/mute", response_model=DoneOut)
async def mute(stream_id: StreamIdPath, body: MuteBody, _: Moderator, ctx: Ctx) -> DoneOut:
    """Mute a viewer for `durationSeconds` (default 600): their chat messages are
    refused with an error saying until when. Viewers get `user_muted`."""
    return await _done(await ctx.moderation.mute(stream_id, body))


@router.post("/{stream_id}/moderation/unmute", response_model=DoneOut)
async def unmute(stream_id: StreamIdPath, body: UnmuteBody, _: Moderator, ctx: Ctx) -> DoneOut:
    """Lift a mute now (idempotent)."""
    return await _done(await ctx.moderation.unmute(stream_id, body))


@router.put("/{stream_id}/moderation/blocked-words", response_model=DoneOut)
async def set_blocked_words(stream_id: StreamIdPath, body: BlockedWordsBody, _: Moderator, ctx: Ctx) -> DoneOut:
    """Replace the blocked words (whole words or phrases, any case). A viewer's
    message containing one is refused (not masked); moderators' and admins' are not."""
    return await _done(await ctx.moderation.set_blocked_words(stream_id, body))


@router.put("/{stream_id}/moderation/slow-mode", response_model=DoneOut)
async def set_slow_mode(stream_id: StreamIdPath, body: SlowModeBody, _: Moderator, ctx: Ctx) -> DoneOut:
    """One message per viewer every `seconds` (0 turns it off)."""
    return await _done(await ctx.moderation.set_slow_mode(stream_id, body))
