"""Versioned snapshots of live streams.

One document per stream (`_id` = stream id). A write carries a version (the
stream's sequence number at that point) and only lands if the stored version
is older, so a stale writer (an actor instance that Ray already replaced)
can never overwrite a newer state.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError


class CheckpointStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._checkpoints = db.stream_checkpoints

    async def load(self, stream_id: str) -> dict[str, Any] | None:
        doc = await self._checkpoints.find_one({"_id": stream_id})
        if doc is None:
            return None
        doc.pop("_id", None)
        return doc

    async def save(self, stream_id: str, version: int, state: dict[str, Any]) -> bool:
        """Store `state` as `version`. True if stored (or the same version was
        already stored), False if a newer version is there."""
        try:
            result = await self._checkpoints.update_one(
                {"_id": stream_id, "version": {"$lt": version}},
                {"$set": {**state, "version": version}},
                upsert=True,
            )
        except DuplicateKeyError:
            # The filter missed because the stored version is not older, and
            # the upsert then collided with the existing _id.
            stored = await self._checkpoints.find_one({"_id": stream_id}, {"version": 1})
            return stored is not None and int(stored["version"]) == version
        return result.acknowledged

    async def delete(self, stream_id: str) -> None:
        await self._checkpoints.delete_one({"_id": stream_id})
