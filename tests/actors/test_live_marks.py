"""Go-lives arriving together share their durable live mark: one write (and
one read) per group, on the real embedded database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from actors.registry_actor import LiveMarks
from persistence.database import DatabaseConfig, connect
from persistence.streams import LIVE, StreamStore, new_stream_id
from tests.support.databases import DatabaseServer, fresh_database


@pytest.fixture
async def db(embedded_db: DatabaseServer) -> AsyncIterator[AsyncDatabase]:
    async with fresh_database(embedded_db) as database:
        yield database


class CountedStreams(StreamStore):
    """The real store, its `mark_live_many` calls counted (the groups)."""

    def __init__(self, db: AsyncDatabase) -> None:
        super().__init__(db)
        self.groups: list[list[str]] = []

    async def mark_live_many(self, stream_ids: list[str], start_time: str) -> dict[str, dict[str, Any]]:
        self.groups.append(list(stream_ids))
        return await super().mark_live_many(stream_ids, start_time)


async def test_go_lives_arriving_together_share_one_write(db: AsyncDatabase) -> None:
    streams = CountedStreams(db)
    ids = [(await streams.create(title=f"s{i}", scheduled_at="2026-12-01T10:00:00.000Z"))["_id"] for i in range(100)]
    marks = LiveMarks(streams)
    answers = await asyncio.wait_for(asyncio.gather(*(marks.mark(sid) for sid in ids)), 10.0)
    assert streams.groups == [ids], "100 go-lives started together: one write"
    start_times = {start for _, start, _ in answers}
    assert len(start_times) == 1
    for sid, (record, start, group) in zip(ids, answers, strict=True):
        assert record is not None and record["_id"] == sid and record["status"] == LIVE
        assert record["startTime"] == start and group == 100
    assert await db.streams.count_documents({"status": LIVE}) == 100


async def test_those_arriving_during_a_write_share_the_next_one_with_a_time_of_its_own(db: AsyncDatabase) -> None:
    streams = CountedStreams(db)
    ids = [(await streams.create(title=f"s{i}"))["_id"] for i in range(21)]
    marks = LiveMarks(streams)
    first = asyncio.get_running_loop().create_task(marks.mark(ids[0]))
    while not streams.groups:  # the first write has started
        await asyncio.sleep(0)
    later = asyncio.gather(*(marks.mark(sid) for sid in ids[1:]))
    (record, start, _), answers = await asyncio.wait_for(asyncio.gather(first, later), 10.0)
    assert streams.groups == [ids[:1], ids[1:]]
    assert record is not None and record["startTime"] == start
    assert {s for _, s, _ in answers} == {answers[0][1]} and answers[0][1] > start, "each write its own time"


async def test_an_unknown_stream_gets_no_record_and_a_failed_write_fails_every_go_live_of_it(
    db: AsyncDatabase, embedded_db: DatabaseServer
) -> None:
    streams = CountedStreams(db)
    known = (await streams.create(title="known"))["_id"]
    marks = LiveMarks(streams)
    (record, _, _), (unknown, _, _) = await marks.mark(known), await marks.mark(new_stream_id())
    assert record is not None and unknown is None

    gone = connect(DatabaseConfig(uri=embedded_db.uri, name=db.name))
    await gone.client.close()  # every operation on it fails, as on a lost database
    failing = LiveMarks(StreamStore(gone))
    results = await asyncio.wait_for(
        asyncio.gather(*(failing.mark(new_stream_id()) for _ in range(3)), return_exceptions=True), 10.0
    )
    assert len(results) == 3 and all(isinstance(r, PyMongoError) for r in results), results
