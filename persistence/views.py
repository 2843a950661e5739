"""Views of a stream: one record per `POST /livestreams/{id}/view`.

Each call is one view (an app opening the stream), so the count is of
openings, not of people; unique viewers come from `stream_viewers`
(see `audience.py`). Records are append-only.
"""

from __future__ import annotations

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from runtime.clock import now_iso


class ViewStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._views = db.stream_views

    async def record(self, stream_id: str, viewer_key: str | None, user_id: str | None, session_id: str | None) -> str:
        view_id = str(ObjectId())
        await self._views.insert_one(
            {
                "_id": view_id,
                "streamId": stream_id,
                "viewerKey": viewer_key,
                "userId": user_id,
                "sessionId": session_id,
                "at": now_iso(),
            }
        )
        return view_id

    async def count(self, stream_id: str) -> int:
        return await self._views.count_documents({"streamId": stream_id})
