"""The journal of a live stream: one entry per commit, in order.

An entry records what a commit applied (the batches, the time, the gateways
whose lease expired) and what it published (the encoded events). A stream's
state is its last checkpoint plus the journal entries after it, replayed
through the pure core; the published events of recent entries let a
restarted actor serve gateways and resuming clients without a gap.

Guarantees: an entry is written once per (stream, version) (unique `_id`); a
second writer of the same version is told so (`StaleWriter`), which fences a
stale actor instance. Entries older than what is kept are pruned.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError


class StaleWriter(Exception):
    """Another instance of the stream's actor already wrote this version."""


class JournalStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._journal = db.stream_journal

    async def append(self, stream_id: str, version: int, writer: str, entry: dict[str, Any]) -> None:
        """Store entry `version`. Idempotent for the same writer; raises
        `StaleWriter` if another writer stored that version."""
        doc = {
            **entry,
            "_id": f"{stream_id}:{version:012d}",
            "streamId": stream_id,
            "version": version,
            "writer": writer,
        }
        try:
            await self._journal.insert_one(doc)
        except DuplicateKeyError:
            stored = await self._journal.find_one({"_id": doc["_id"]}, {"writer": 1})
            if stored is None or stored.get("writer") != writer:
                raise StaleWriter(f"{stream_id} version {version} was written by another instance") from None

    async def after(self, stream_id: str, version: int) -> list[dict[str, Any]]:
        """Entries with a version above `version`, oldest first."""
        cursor = self._journal.find({"streamId": stream_id, "version": {"$gt": version}}).sort("version", ASCENDING)
        return await cursor.to_list()

    async def tail(self, stream_id: str, up_to: int, limit: int) -> list[dict[str, Any]]:
        """The last `limit` entries with a version up to `up_to`, oldest first."""
        cursor = (
            self._journal.find({"streamId": stream_id, "version": {"$lte": up_to}})
            .sort("version", DESCENDING)
            .limit(limit)
        )
        docs = await cursor.to_list()
        docs.reverse()
        return docs

    async def prune(self, stream_id: str, below_version: int) -> int:
        result = await self._journal.delete_many({"streamId": stream_id, "version": {"$lt": below_version}})
        return int(result.deleted_count)
