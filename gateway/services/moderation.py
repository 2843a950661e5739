"""Chat moderation of a live stream: one rule for REST
(`/livestreams/{id}/moderation/...`) and the WebSocket (`delete_message`,
`mute_user`, `unmute_user`, `set_blocked_words`, `set_slow_mode`).

Who may moderate: admins and moderators (`may_moderate`), on both paths.

The limits are declared once, here, as the field types both transports parse
with (`MessageId`, `ViewerKey`, `MuteSeconds`, `BlockedWords`,
`SlowModeSeconds`), so one value is accepted or refused with the same words by
both; the request models below (whom to mute: at least one of ...) are the
REST bodies and the WebSocket frames alike.

Guarantees: each action is a command to the stream, queued in the order the
caller queues it and answered once the stream has stored it (durable in its
journal); it then takes effect on every gateway and reaches viewers as an event
(`chat_message_deleted`, `user_muted`, `user_unmuted`, `moderation_updated`).
Deleting a deleted message and unmuting someone not muted change nothing
(idempotent); muting again replaces the end time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from core.commands import Command, DeleteMessage, Mute, SetBlockedWords, SetSlowMode, Unmute
from core.limits import MAX_BLOCKED_WORD_CHARS, MAX_BLOCKED_WORDS, MAX_SLOW_MODE_SECONDS
from core.results import Result
from gateway.security.credentials import Claims
from gateway.services.errors import INVALID, ServiceError
from gateway.services.inputs import NOT_BLANK_SCHEMA, Integral, NotBlank
from gateway.services.stream_commands import LiveStreams, Queued
from runtime.clock import iso, now

MUTE_MAX_SECONDS = 30 * 24 * 3600
MUTE_DEFAULT_SECONDS = 600
MAX_MESSAGE_ID = 2**53  # a chat message's id is its stream seq; JSON numbers are exact up to here
VIEWER_KEY_CHARS = 128  # as long as a `register` frame's sessionId may be

MessageId = Annotated[int, Field(strict=True, ge=1, le=MAX_MESSAGE_ID), Integral]
ViewerKey = Annotated[str, StringConstraints(min_length=1, max_length=VIEWER_KEY_CHARS)]
"""Whom a like or a mute is counted under: a user id, or the sessionId a connection registered with."""
MuteSeconds = Annotated[int, Field(strict=True, ge=1, le=MUTE_MAX_SECONDS), Integral]
BlockedWord = Annotated[
    str, Field(min_length=1, max_length=MAX_BLOCKED_WORD_CHARS, json_schema_extra=NOT_BLANK_SCHEMA), NotBlank
]
BlockedWords = Annotated[list[BlockedWord], Field(max_length=MAX_BLOCKED_WORDS)]
SlowModeSeconds = Annotated[int, Field(strict=True, ge=0, le=MAX_SLOW_MODE_SECONDS), Integral]


# ---------------------------------------------------------------- requests
# REST bodies and WebSocket frames are these models (subclassed to add their
# own fields: a frame's `type` and `streamId`, a body's schema extras).


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class DeleteRequest(_Request):
    messageId: MessageId


class MuteRequest(_Request):
    """Who: `userId` or `sessionId`, or `messageId` (the sender of that recent
    message); at least one of them."""

    userId: ViewerKey | None = None
    sessionId: ViewerKey | None = None
    messageId: MessageId | None = None
    durationSeconds: MuteSeconds = MUTE_DEFAULT_SECONDS

    @model_validator(mode="after")
    def _someone(self) -> MuteRequest:
        if self.userId is None and self.sessionId is None and self.messageId is None:
            raise ValueError("send userId, sessionId or messageId")
        return self


class UnmuteRequest(_Request):
    """Who: `userId` or `sessionId`."""

    userId: ViewerKey | None = None
    sessionId: ViewerKey | None = None

    @model_validator(mode="after")
    def _someone(self) -> UnmuteRequest:
        if self.userId is None and self.sessionId is None:
            raise ValueError("send userId or sessionId")
        return self


class BlockedWordsRequest(_Request):
    words: BlockedWords


class SlowModeRequest(_Request):
    seconds: SlowModeSeconds


# ---------------------------------------------------------------- the service


@dataclass(frozen=True)
class Done:
    """A stored moderation action: the event it produced (None when nothing
    changed), and for a mute whom and until when."""

    seq: int | None
    user_key: str | None = None
    until: str | None = None


def _done(result: Result) -> Done:
    data = result.data or {}
    return Done(seq=result.seq, user_key=data.get("userKey"), until=data.get("until"))


def may_moderate(claims: Claims | None) -> bool:
    """Admins and moderators; nobody else (guests included)."""
    return claims is not None and claims.can_moderate


class ModerationService:
    """Every method takes a request already validated by its model (above) and
    queues one command; refusals: the stream is not live (`not_found`,
    `not_live`), then whatever the stream refuses (a message it never had or no
    longer holds: `not_found`; too many mutes: `rejected`)."""

    def __init__(self, live: LiveStreams) -> None:
        self.live = live

    async def _queue(self, stream_id: str, command: Command) -> Queued[Done]:
        relay = await self.live.relay(stream_id)
        return Queued(relay.submit(command), _done)

    async def delete_message(self, stream_id: str, request: DeleteRequest) -> Queued[Done]:
        """Delete a chat message (its id is its seq): gone from the live and the stored history."""
        return await self._queue(stream_id, DeleteMessage(request.messageId))

    async def mute(self, stream_id: str, request: MuteRequest) -> Queued[Done]:
        """Mute `userId` or `sessionId` (the first given), else the sender of the
        recent message `messageId`, for `durationSeconds` from now."""
        target = request.userId or request.sessionId
        until = iso(now() + timedelta(seconds=request.durationSeconds))
        return await self._queue(
            stream_id, Mute(until=until, target=target, message_seq=None if target else request.messageId)
        )

    async def unmute(self, stream_id: str, request: UnmuteRequest) -> Queued[Done]:
        """Lift a mute now (`userId` or `sessionId`, the first given)."""
        target = request.userId or request.sessionId
        if target is None:  # the model refuses this; a caller that built one by hand gets told too
            raise ServiceError(INVALID, "send userId or sessionId")
        return await self._queue(stream_id, Unmute(target))

    async def set_blocked_words(self, stream_id: str, request: BlockedWordsRequest) -> Queued[Done]:
        """Replace the blocked words (whole words or phrases, any case)."""
        return await self._queue(stream_id, SetBlockedWords(tuple(request.words)))

    async def set_slow_mode(self, stream_id: str, request: SlowModeRequest) -> Queued[Done]:
        """One chat message per viewer every `seconds` (0 turns it off)."""
        return await self._queue(stream_id, SetSlowMode(request.seconds))
