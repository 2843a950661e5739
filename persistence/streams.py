"""Stream records: what a stream is and where it is in its life.

Times are ISO 8601 strings (see `runtime.clock`).

A record goes `scheduled` -> `live` -> `ended`, each step a conditional update
so two callers racing cannot both move it. While a stream is live its numbers
live in its actor (and in its checkpoint); `mark_ended` copies the final
numbers onto the record, which is what past streams show.
"""

from __future__ import annotations

import builtins
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from runtime.clock import now_iso

SCHEDULED, LIVE, ENDED = "scheduled", "live", "ended"


def new_stream_id() -> str:
    """24 hex characters: fits an Agora channel name (under 64 bytes)."""
    return str(ObjectId())


def is_stream_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == 24 and all(c in "0123456789abcdef" for c in value)


class StreamStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._streams = db.streams

    async def create(
        self,
        *,
        title: str,
        description: str = "",
        stream_url: str = "",
        quality: str = "auto",
        host_id: str | None = None,
        scheduled_at: str | None = None,
    ) -> dict[str, Any]:
        doc = {
            "_id": new_stream_id(),
            "title": title,
            "description": description,
            "streamUrl": stream_url,
            "quality": quality,
            "hostId": host_id,
            "status": SCHEDULED,
            "createdAt": now_iso(),
            "scheduledAt": scheduled_at,
            "startTime": None,
            "endTime": None,
        }
        await self._streams.insert_one(doc)
        return doc

    async def get(self, stream_id: str) -> dict[str, Any] | None:
        if not is_stream_id(stream_id):
            return None
        return await self._streams.find_one({"_id": stream_id})

    async def list(self, status: str | None = None, *, skip: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        query: dict[str, Any] = {} if status is None else {"status": status}
        sort_key = "endTime" if status == ENDED else "createdAt"
        cursor = self._streams.find(query).sort(sort_key, DESCENDING).skip(skip).limit(limit)
        return await cursor.to_list()

    async def count(self, status: str | None = None) -> int:
        return await self._streams.count_documents({} if status is None else {"status": status})

    async def live_ids(self) -> builtins.list[str]:  # `list` in this class is the method above
        return [d["_id"] async for d in self._streams.find({"status": LIVE}, {"_id": 1})]

    async def scheduled_times(self, since: str) -> dict[str, str]:
        """Stream id -> `scheduledAt`, for every scheduled (not yet live) stream
        scheduled at `since` or later (ISO strings in `runtime.clock`'s form sort in time order)."""
        query = {"status": SCHEDULED, "scheduledAt": {"$gte": since}}
        cursor = self._streams.find(query, {"_id": 1, "scheduledAt": 1})
        return {d["_id"]: d["scheduledAt"] async for d in cursor}

    async def mark_live(self, stream_id: str, start_time: str) -> dict[str, Any] | None:
        """scheduled -> live. Returns the updated record, or None if it was not scheduled."""
        return await self._streams.find_one_and_update(
            {"_id": stream_id, "status": SCHEDULED},
            {"$set": {"status": LIVE, "startTime": start_time}},
            return_document=ReturnDocument.AFTER,
        )

    async def mark_live_many(self, stream_ids: builtins.list[str], start_time: str) -> dict[str, dict[str, Any]]:
        """scheduled -> live at `start_time`, for each of `stream_ids` that is
        scheduled, in one write; then every one's record (those that exist),
        in one read. A record this call marked is live with `startTime ==
        start_time`: the caller gives each call a time of its own, so a record
        live from before is told apart. (Go-lives arriving together share these
        two round trips instead of one write each.)"""
        ids = builtins.list(stream_ids)
        await self._streams.update_many(
            {"_id": {"$in": ids}, "status": SCHEDULED}, {"$set": {"status": LIVE, "startTime": start_time}}
        )
        return {d["_id"]: d async for d in self._streams.find({"_id": {"$in": ids}})}

    async def unmark_live(self, stream_id: str, start_time: str) -> bool:
        """live -> scheduled again, for a go-live that `mark_live` began at
        `start_time` and that could not bring the stream's actor up (no capacity):
        the stream is as it was before. False if the record moved on meanwhile."""
        result = await self._streams.update_one(
            {"_id": stream_id, "status": LIVE, "startTime": start_time},
            {"$set": {"status": SCHEDULED, "startTime": None}},
        )
        return result.modified_count == 1

    async def mark_ended(self, stream_id: str, end_time: str, final: dict[str, Any]) -> dict[str, Any] | None:
        """live -> ended, with the stream's final numbers. None if it was not live.
        Nobody watches an ended stream: its `viewerCount` is 0, and the viewers
        it had at the end are kept as `viewersAtEnd`."""
        kept = ("peakViewers", "totalJoins", "likes", "chatCount", "pinnedProducts")
        fields: dict[str, Any] = {k: final[k] for k in kept if k in final}
        fields["viewersAtEnd"] = final.get("viewerCount", 0)
        return await self._streams.find_one_and_update(
            {"_id": stream_id, "status": LIVE},
            {"$set": {"status": ENDED, "endTime": end_time, "viewerCount": 0, **fields}},
            return_document=ReturnDocument.AFTER,
        )

    async def update_unless_live(self, stream_id: str, fields: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        """Set `fields` unless the stream is live (its actor holds the meta while
        live). Returns (record after, found): (None, True) means it is live."""
        if not is_stream_id(stream_id):
            return None, False
        doc = await self._streams.find_one_and_update(
            {"_id": stream_id, "status": {"$ne": LIVE}}, {"$set": fields}, return_document=ReturnDocument.AFTER
        )
        if doc is not None:
            return doc, True
        return None, await self._streams.count_documents({"_id": stream_id}) > 0

    async def delete_unless_live(self, stream_id: str) -> tuple[bool, bool]:
        """Delete the record unless it is live. Returns (deleted, found)."""
        if not is_stream_id(stream_id):
            return False, False
        result = await self._streams.delete_one({"_id": stream_id, "status": {"$ne": LIVE}})
        if result.deleted_count == 1:
            return True, True
        return False, await self._streams.count_documents({"_id": stream_id}) > 0
