"""Every store test gets a fresh database (unique name) on the session's
database server, with the indexes the stores rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from persistence.database import DatabaseConfig, connect, ensure_indexes
from tests.support.databases import DatabaseServer


@pytest.fixture
async def db(embedded_db: DatabaseServer) -> AsyncIterator[AsyncDatabase]:
    database = connect(DatabaseConfig(uri=embedded_db.uri, name=f"t{uuid4().hex[:8]}"))
    try:
        await ensure_indexes(database)
        yield database
    finally:
        await database.client.close()
