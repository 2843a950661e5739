"""Events: what the stream tells everyone, numbered in order.

An `Event` is one numbered change of the stream; `core.wire.encode_event`
adds the envelope (`type`, `streamId`, `seq`, `epoch`) and makes the text
every client receives. The event types and their bodies:

* `chat_message`: a `ChatRecord.to_wire()`; `chat_message_deleted`: `messageId`.
* `stream_update` (coalesced): `viewerCount`, `likes`, `likedByAdded`, `likedByRemoved`.
* `pinned_products_updated`: `pinnedProducts`, the whole list in display order.
* `flash_sale_started`, `flash_sale_updated` (coalesced), `flash_sale_ended`:
  `flashSale` (and `reason` when it ended).
* `user_muted`, `user_unmuted`: `userKey` (and `until`); `moderation_updated`:
  `slowModeSeconds` and how many `blockedWords` there are (never the words).
* `stream_stopped`: the last event of the stream.

`core.stream_view.StreamView` is the one projection of these events onto
what a stream shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """One numbered event of the stream. `body` is what clients see, minus
    the envelope (`type`, `streamId`, `seq`, `epoch`) that the shell adds."""

    seq: int
    type: str
    body: dict[str, Any]


@dataclass(slots=True)
class ChatRecord:
    """One chat message: as stored (`to_doc`, with who sent it) and as shown
    (`to_wire`, the body of its `chat_message` event)."""

    seq: int
    username: str
    message: str
    is_admin: bool
    timestamp: str
    session_id: str | None
    user_id: str | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.seq,
            "seq": self.seq,
            "username": self.username,
            "message": self.message,
            "isAdmin": self.is_admin,
            "timestamp": self.timestamp,
        }

    def to_doc(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "username": self.username,
            "message": self.message,
            "isAdmin": self.is_admin,
            "timestamp": self.timestamp,
            "sessionId": self.session_id,
            "userId": self.user_id,
        }

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> ChatRecord:
        return ChatRecord(
            seq=int(doc["seq"]),
            username=str(doc["username"]),
            message=str(doc["message"]),
            is_admin=bool(doc["isAdmin"]),
            timestamp=str(doc["timestamp"]),
            session_id=doc.get("sessionId"),
            user_id=doc.get("userId"),
        )


# The keys of a `chat_message` event that make the message as shown (the rest is the envelope).
CHAT_WIRE_KEYS = ("id", "seq", "username", "message", "isAdmin", "timestamp")
