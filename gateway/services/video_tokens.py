"""Agora RTC tokens (AccessToken 006, via `agora-token-builder`). Pure: no I/O.

* The channel is the stream id itself (24 hex characters, under Agora's 64
  bytes), so every caller of one stream lands in the same channel.
* `publisher` tokens carry the join and publish privileges; `audience` tokens
  only the join privilege.
* A uid is a 32-bit unsigned integer; 0 would let any uid use the token, so
  the default is derived from the caller (user id or session) and is never 0.
* The app certificate signs the token and never leaves this module's caller.
"""

from __future__ import annotations

import secrets
import zlib
from dataclasses import dataclass

from agora_token_builder import RtcTokenBuilder
from agora_token_builder.RtcTokenBuilder import Role_Publisher, Role_Subscriber

PUBLISHER, AUDIENCE = "publisher", "audience"
MAX_TTL_S = 24 * 3600
MIN_TTL_S = 60
MAX_UID = 2**32 - 1


@dataclass(frozen=True, slots=True)
class VideoToken:
    app_id: str
    channel: str
    uid: int
    role: str
    token: str
    expires_at: int  # seconds since the epoch


def channel_for(stream_id: str) -> str:
    return stream_id


def uid_for(identity: str | None) -> int:
    """A stable non-zero uid for a caller, random when the caller is unknown."""
    if not identity:
        return secrets.randbelow(MAX_UID) + 1
    return (zlib.crc32(identity.encode()) % MAX_UID) + 1


def build(app_id: str, certificate: str, stream_id: str, uid: int, role: str, expires_at: int) -> VideoToken:
    agora_role = Role_Publisher if role == PUBLISHER else Role_Subscriber
    channel = channel_for(stream_id)
    token = RtcTokenBuilder.buildTokenWithUid(app_id, certificate, channel, uid, agora_role, expires_at)
    return VideoToken(app_id=app_id, channel=channel, uid=uid, role=role, token=token, expires_at=expires_at)
