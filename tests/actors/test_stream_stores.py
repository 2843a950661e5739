"""The stream actor's stores bound every call without PyMongo's `timeoutMS`: a hung
database (a private embedded server, SIGSTOPped) costs one call at most its budget and
raises a transient `PyMongoError`, and a task cancelled in the middle of a store call
always ends (under `timeoutMS`, Python 3.11's `asyncio.wait_for` inside PyMongo could
lose the cancellation and leave the task running for good)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from pymongo.errors import PyMongoError

from actors.storage_errors import StorageError, classify
from actors.stream_stores import StreamStores
from persistence.database import DatabaseConfig, within
from persistence.embedded import EmbeddedMongo
from tests.support.databases import DatabaseServer

BUDGET_MS = 1000


@pytest.fixture
def private_db(tmp_path: Path) -> Iterator[EmbeddedMongo]:
    """A database only this test stops, so the rest of the suite never waits for it."""
    db = EmbeddedMongo(tmp_path / "db").start()
    yield db
    db.stop()


async def test_a_hung_database_costs_a_store_call_its_budget_and_a_transient_error(private_db: EmbeddedMongo) -> None:
    stores = StreamStores.connect(DatabaseConfig(uri=private_db.uri, name="hung", timeout_ms=BUDGET_MS))
    sid = f"s{uuid4().hex[:8]}"
    assert await stores.chat.recent(sid, 5) == []  # connected, then the server stops answering
    pid = int((private_db.data_dir / "nx-27017.pid").read_text().strip())
    os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        with pytest.raises(PyMongoError) as raised:
            await asyncio.wait_for(stores.chat.recent(sid, 5), 30)  # the test's own bound: never reached
        took = time.monotonic() - began
    finally:
        os.kill(pid, signal.SIGCONT)
    assert raised.value.timeout and classify(raised.value) is StorageError.TRANSIENT, raised.value
    assert took < BUDGET_MS / 1000 + 4.0, took
    assert await stores.chat.recent(sid, 5) == []  # and it answers again


async def test_a_task_cancelled_during_store_calls_always_ends(embedded_db: DatabaseServer) -> None:
    config = DatabaseConfig(uri=embedded_db.uri, name=f"t{uuid4().hex[:8]}", timeout_ms=5000)
    stores = StreamStores.connect(config)
    sid = f"s{uuid4().hex[:8]}"

    async def keep_storing() -> None:
        n = 0
        while True:  # only a cancellation ends it
            n += 1
            await stores.chat.insert(sid, "e", [{"seq": n, "message": f"m{n}", "username": "ann"}])

    for i in range(60):
        task = asyncio.get_running_loop().create_task(keep_storing())
        await asyncio.sleep(0.002 * (i % 10))  # cancelled at a different moment of a call each time
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert task in done and task.cancelled(), f"round {i}: a cancelled task kept running"


async def test_within_bounds_a_call_and_passes_a_cancellation_through() -> None:
    with pytest.raises(PyMongoError) as raised:
        await within(0.05, asyncio.sleep(10))
    assert raised.value.timeout
    assert await within(1.0, asyncio.sleep(0, "answer")) == "answer"

    task = asyncio.get_running_loop().create_task(within(10, asyncio.sleep(10)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
