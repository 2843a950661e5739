"""Which pooled actor serves which stream.

A stream can be served by an actor that was started ahead of time (a spare,
named `slot:<id>`): starting a stream then costs no process start. The
assignment is stored here before the actor adopts the stream, so when Ray
restarts that actor (running its constructor again, without a stream) it
reads what it serves and recovers it. `_id` is the actor's name.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase


class SlotStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._slots = db.stream_slots

    async def assign(self, slot: str, stream_id: str, meta: dict[str, Any]) -> None:
        """Idempotent: assigning the same stream again changes nothing.
        (An update with `$set`, not `replace_one`: the embedded server's
        `replace_one(..., upsert=True)` ignores the `_id` of the filter.)"""
        await self._slots.update_one({"_id": slot}, {"$set": {"streamId": stream_id, "meta": meta}}, upsert=True)

    async def assignment(self, slot: str) -> tuple[str, dict[str, Any]] | None:
        doc = await self._slots.find_one({"_id": slot})
        return None if doc is None else (str(doc["streamId"]), dict(doc.get("meta", {})))

    async def slot_of(self, stream_id: str) -> str | None:
        doc = await self._slots.find_one({"streamId": stream_id}, {"_id": 1})
        return None if doc is None else str(doc["_id"])

    async def release(self, slot: str) -> None:
        await self._slots.delete_one({"_id": slot})
