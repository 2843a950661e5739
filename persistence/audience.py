"""Who watched: the raw material of viewer analytics.

* `stream_viewers`: one document per (stream, session) that ever watched,
  `_id` = `<stream>:<session>`, so recording a session twice records it once.
* `viewer_samples`: one document per (stream, minute) with the most viewers
  seen in that minute (`$max`), so samples from retries or restarts merge.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


class AudienceStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._viewers = db.stream_viewers
        self._samples = db.viewer_samples

    async def record_viewers(self, stream_id: str, session_ids: Iterable[str], at: str) -> None:
        docs = [
            {"_id": f"{stream_id}:{s}", "streamId": stream_id, "sessionId": s, "firstSeenAt": at}
            for s in dict.fromkeys(session_ids)
        ]
        if not docs:
            return
        try:
            await self._viewers.insert_many(docs, ordered=False)
        except BulkWriteError as e:
            if any(err.get("code") != DUPLICATE_KEY for err in e.details.get("writeErrors", [])):
                raise

    async def record_sample(self, stream_id: str, minute: str, viewers: int) -> None:
        """`minute` is `YYYY-MM-DDTHH:MM` (UTC)."""
        await self._samples.update_one(
            {"_id": f"{stream_id}:{minute}"},
            {"$max": {"viewers": viewers}, "$setOnInsert": {"streamId": stream_id, "minute": minute}},
            upsert=True,
        )

    async def unique_viewers(self, stream_id: str) -> int:
        return await self._viewers.count_documents({"streamId": stream_id})

    async def samples(self, stream_id: str) -> list[dict[str, object]]:
        return await self._samples.find({"streamId": stream_id}).sort("minute", 1).to_list()
