"""Every chat message of every stream, in its own collection.

`_id` is `<streamId>:<epoch>:<seq>`, so storing the same message twice (a
retried write, a replayed batch) stores it once. Reads go through the
`(streamId, seq)` index. A message a moderator deleted stays stored with
`deleted: true` (and when) and is left out of every read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


class ChatStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._chat = db.chat_messages

    async def insert(self, stream_id: str, epoch: str, messages: Iterable[dict[str, Any]]) -> None:
        """Store messages (dicts with at least `seq`). Idempotent per message."""
        docs = [
            {**m, "_id": f"{stream_id}:{epoch}:{m['seq']}", "streamId": stream_id, "epoch": epoch} for m in messages
        ]
        if not docs:
            return
        try:
            await self._chat.insert_many(docs, ordered=False)
        except BulkWriteError as e:
            errors = e.details.get("writeErrors", [])
            if any(err.get("code") != DUPLICATE_KEY for err in errors):
                raise

    async def mark_deleted(self, stream_id: str, epoch: str, seqs: Iterable[int], at: str) -> int:
        """Mark messages deleted (idempotent: marking twice changes nothing).
        Queries only by the ids built here from ints, never from client data."""
        wanted = [int(seq) for seq in seqs]
        if not wanted:
            return 0
        # By (streamId, epoch, seq), not `_id`: the embedded server ignores the
        # other conditions of a filter on `_id`.
        result = await self._chat.update_many(
            {"streamId": stream_id, "epoch": epoch, "seq": {"$in": wanted}, "deleted": {"$ne": True}},
            {"$set": {"deleted": True, "deletedAt": at}},
        )
        return int(result.modified_count)

    async def recent(self, stream_id: str, limit: int, up_to_seq: int | None = None) -> list[dict[str, Any]]:
        """The last `limit` messages of the stream (up to `up_to_seq`), oldest first."""
        query: dict[str, Any] = {"streamId": stream_id, "deleted": {"$ne": True}}
        if up_to_seq is not None:
            query["seq"] = {"$lte": int(up_to_seq)}
        cursor = self._chat.find(query).sort("seq", DESCENDING).limit(limit)
        docs = await cursor.to_list()
        docs.reverse()
        return docs

    async def page(self, stream_id: str, *, before_seq: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Messages older than `before_seq` (all if None), newest first."""
        query: dict[str, Any] = {"streamId": stream_id, "deleted": {"$ne": True}}
        if before_seq is not None:
            query["seq"] = {"$lt": int(before_seq)}
        cursor = self._chat.find(query).sort("seq", DESCENDING).limit(limit)
        return await cursor.to_list()

    async def count(self, stream_id: str) -> int:
        return await self._chat.count_documents({"streamId": stream_id, "deleted": {"$ne": True}})

    async def all_in_order(self, stream_id: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"streamId": stream_id}
        if not include_deleted:
            query["deleted"] = {"$ne": True}
        return await self._chat.find(query).sort("seq", ASCENDING).to_list()
