"""Every store test gets a fresh database (unique name) on the session's
database server, with the indexes the stores rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from tests.support.databases import DatabaseServer, fresh_database


@pytest.fixture
async def db(embedded_db: DatabaseServer) -> AsyncIterator[AsyncDatabase]:
    async with fresh_database(embedded_db) as database:
        yield database
