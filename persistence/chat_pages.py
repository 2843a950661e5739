"""Chat history as REST pages it: newest first, `skip`/`limit`, with a total.

Reads the `chat_messages` collection that the stream actors write
(`chat.py`); never writes. Messages deleted by a moderator are left out.
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase


class ChatPages:
    def __init__(self, db: AsyncDatabase) -> None:
        self._chat = db.chat_messages

    async def page(self, stream_id: str, *, skip: int, limit: int) -> list[dict[str, Any]]:
        cursor = (
            self._chat.find({"streamId": stream_id, "deleted": {"$ne": True}})
            .sort("seq", DESCENDING)
            .skip(skip)
            .limit(limit)
        )
        return await cursor.to_list()

    async def count(self, stream_id: str) -> int:
        return await self._chat.count_documents({"streamId": stream_id, "deleted": {"$ne": True}})
