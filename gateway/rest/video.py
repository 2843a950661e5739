"""`GET /livestreams/agora/token`: video tokens for the apps.

The publisher role goes only to the admin who hosts the stream (its
`hostId`); anyone else asking for it gets 403. Everyone else, anonymous
viewers included, gets the audience role. Without `AGORA_APP_ID` and
`AGORA_APP_CERTIFICATE` the endpoint answers 503 saying what to set. The
certificate appears in no answer and no log.

The stream is named by exactly one of `streamId` and `channelName` (the same
value: the channel is the stream id). OpenAPI cannot relate two separate
parameters, so the document describes the query string as one exploded object
(`style: form, explode: true`: `?streamId=...&role=...` on the wire, as
before) whose schema has the rule as `oneOf`.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from gateway.errors import ApiError
from gateway.rest.deps import Ctx, OptionalUser
from gateway.rest.exact_json import ExactJsonRoute
from gateway.security.identity import SessionHeader
from gateway.services import video_tokens
from persistence.streams import ENDED
from runtime.clock import iso

router = APIRouter(prefix="/livestreams", tags=["video"], route_class=ExactJsonRoute)

APP_ID = re.compile(r"^[0-9a-fA-F]{32}$")
STREAM_ID = r"^[0-9a-f]{24}$"

TOKEN_QUERY: dict[str, Any] = {
    "name": "query",
    "in": "query",
    "required": True,
    "style": "form",
    "explode": True,
    "description": "The query string: exactly one of `streamId` and `channelName`, and optionally `role`, "
    "`uid`, `expiresIn` (e.g. `?streamId=...&role=audience`).",
    "schema": {
        "type": "object",
        "properties": {
            "streamId": {"type": "string", "pattern": STREAM_ID, "description": "the stream to watch or host"},
            "channelName": {
                "type": "string",
                "pattern": STREAM_ID,
                "description": "the same as streamId (the channel is the stream id)",
            },
            "role": {"type": "string", "enum": ["publisher", "audience"], "description": "default: audience"},
            "uid": {
                "type": "integer",
                "minimum": 1,
                "maximum": video_tokens.MAX_UID,
                "description": "default: derived from the caller",
            },
            "expiresIn": {
                "type": "integer",
                "minimum": video_tokens.MIN_TTL_S,
                "maximum": video_tokens.MAX_TTL_S,
                "description": "seconds; default AGORA_TOKEN_TTL_SECONDS, at most 86400",
            },
        },
        "oneOf": [{"required": ["streamId"]}, {"required": ["channelName"]}],
    },
}
"""The operation's query string as OpenAPI states it (the parameters below are
validated one by one and hidden from the document, which shows this instead)."""


class VideoTokenOut(BaseModel):
    appId: str
    channel: str
    channelName: str
    uid: int
    role: Literal["publisher", "audience"]
    token: str
    expiresAt: str
    expiresIn: int
    privilegeExpiredTs: int


@router.get("/agora/token", response_model=VideoTokenOut, openapi_extra={"parameters": [TOKEN_QUERY]})
async def agora_token(
    ctx: Ctx,
    claims: OptionalUser,
    session_id: SessionHeader = None,
    streamId: Annotated[str | None, Query(pattern=STREAM_ID, include_in_schema=False)] = None,
    channelName: Annotated[str | None, Query(pattern=STREAM_ID, include_in_schema=False)] = None,
    role: Annotated[Literal["publisher", "audience"] | None, Query(include_in_schema=False)] = None,
    uid: Annotated[int | None, Query(ge=1, le=video_tokens.MAX_UID, include_in_schema=False)] = None,
    expiresIn: Annotated[
        int | None, Query(ge=video_tokens.MIN_TTL_S, le=video_tokens.MAX_TTL_S, include_in_schema=False)
    ] = None,
) -> VideoTokenOut:
    """A token for the stream's channel: `publisher` for its hosting admin,
    `audience` for everyone else. Name the stream with `streamId` or
    `channelName`, not both (422 otherwise)."""
    settings = ctx.settings
    certificate = settings.agora_app_certificate.get_secret_value() if settings.agora_app_certificate else ""
    if not settings.agora_app_id or not certificate:
        raise ApiError(503, "Video tokens are not configured: set AGORA_APP_ID and AGORA_APP_CERTIFICATE")
    if not APP_ID.match(settings.agora_app_id) or not APP_ID.match(certificate):
        raise ApiError(503, "AGORA_APP_ID and AGORA_APP_CERTIFICATE must be 32 hex characters each (Agora console)")
    if (streamId is None) == (channelName is None):
        raise ApiError(422, "Invalid request: query: send exactly one of streamId and channelName")
    stream_id = streamId or channelName
    assert stream_id is not None
    record = await ctx.streams.get(stream_id)
    if record is None:
        raise ApiError(404, f"Stream {stream_id} does not exist")
    wanted = role or video_tokens.AUDIENCE
    if wanted == video_tokens.PUBLISHER and (
        claims is None or not claims.is_admin or record.get("hostId") != claims.user_id
    ):
        raise ApiError(403, "Only the admin hosting this stream can publish to it")
    if record["status"] == ENDED:
        raise ApiError(409, "This stream has ended")
    ttl = expiresIn or min(max(settings.agora_token_ttl_seconds, video_tokens.MIN_TTL_S), video_tokens.MAX_TTL_S)
    expires_at = int(time.time()) + ttl
    identity = claims.user_id if claims else session_id
    t = video_tokens.build(
        settings.agora_app_id, certificate, stream_id, uid or video_tokens.uid_for(identity), wanted, expires_at
    )
    return VideoTokenOut(
        appId=t.app_id,
        channel=t.channel,
        channelName=t.channel,
        uid=t.uid,
        role=wanted,
        token=t.token,
        expiresAt=iso(datetime.fromtimestamp(expires_at, UTC)),
        expiresIn=ttl,
        privilegeExpiredTs=expires_at,
    )
