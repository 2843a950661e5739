"""The database connection is bounded: a ping answers True from a live server and
False, within its budget, when nothing answers; operations time out instead of hanging."""

from __future__ import annotations

import socket
import time

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from persistence.database import DatabaseConfig, connect, ping


async def test_ping_answers_true_from_a_live_database(db: AsyncDatabase) -> None:
    assert await ping(db, 2.0)


async def test_a_silent_database_costs_at_most_the_budget() -> None:
    # A listening socket that never answers: like a hung (SIGSTOPped) database.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        db = connect(DatabaseConfig(uri=f"mongodb://127.0.0.1:{port}/?directConnection=true", timeout_ms=1000))
        try:
            start = time.monotonic()
            assert not await ping(db, 1.0)
            with pytest.raises(PyMongoError) as raised:
                await db.products.find_one({})
            took = time.monotonic() - start
            assert raised.value.timeout, raised.value
            assert took < 6.0, took
        finally:
            await db.client.close()
