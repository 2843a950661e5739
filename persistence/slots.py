"""Which pooled actor serves which stream.

A stream can be served by an actor that was started ahead of time (a spare,
named `slot:<id>`): starting a stream then costs no process start. The
assignment is stored here before the actor adopts the stream, so when Ray
restarts that actor (running its constructor again, without a stream) it
reads what it serves and recovers it. `_id` is the actor's name.

An assignment is live (the actor serves the stream) or prepared (the actor
loaded a scheduled stream ahead of its go-live). A prepared assignment is not
written again when the stream goes live: the stream's record says it (its
`status` and `startTime`, `StreamStore.mark_live_many`), and `assignment`
reads it there.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pymongo.asynchronous.database import AsyncDatabase

from core.live_set import stream_meta
from persistence.streams import LIVE


class Assignment(NamedTuple):
    stream_id: str
    meta: dict[str, Any]  # the stream's meta: its record's once the stream is live
    live: bool  # False: prepared ahead of its go-live, not live yet


class SlotStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._slots = db.stream_slots
        self._streams = db.streams

    async def assign(self, slot: str, stream_id: str, meta: dict[str, Any], *, live: bool = True) -> None:
        """Idempotent: assigning the same stream again changes nothing.
        (An update with `$set`, not `replace_one`: the embedded server's
        `replace_one(..., upsert=True)` ignores the `_id` of the filter.)"""
        await self._slots.update_one(
            {"_id": slot}, {"$set": {"streamId": stream_id, "meta": meta, "live": live}}, upsert=True
        )

    async def assignment(self, slot: str) -> Assignment | None:
        """What the slot serves. A prepared assignment whose stream's record is
        live meanwhile (the go-live marked it, then this actor restarted) is
        live, with the record's meta (its start time)."""
        doc = await self._slots.find_one({"_id": slot})
        if doc is None:
            return None
        stream_id, meta, live = str(doc["streamId"]), dict(doc.get("meta", {})), bool(doc.get("live", True))
        if not live and (live_meta := await self.live_meta(stream_id)) is not None:
            meta, live = live_meta, True
        return Assignment(stream_id, meta, live)

    async def live_meta(self, stream_id: str) -> dict[str, Any] | None:
        """The stream's meta as its record holds it if the record is live (its
        start time), else None: how a prepared actor learns it went live."""
        record = await self._streams.find_one({"_id": stream_id})
        return stream_meta(record) if record is not None and record.get("status") == LIVE else None

    async def slot_of(self, stream_id: str) -> str | None:
        doc = await self._slots.find_one({"streamId": stream_id}, {"_id": 1})
        return None if doc is None else str(doc["_id"])

    async def release(self, slot: str) -> None:
        await self._slots.delete_one({"_id": slot})
