"""The database server of a test session, as the tests see it (the `embedded_db` fixture).

Either the embedded nx-27017 the session starts, which a test may stop and start again, or the
MongoDB that `MONGODB_URI` names, which the tests neither start nor stop. Both say where they are
(`uri`), which database the gateways use on them (`db_name`) and whether a test may restart them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias, TypeVar
from uuid import uuid4

from pymongo.asynchronous.database import AsyncDatabase

from persistence.database import DatabaseConfig, connect, ensure_indexes
from persistence.embedded import EmbeddedMongo

T = TypeVar("T")


class SessionMongo(EmbeddedMongo):
    """The embedded server of the session; the gateways use its database `wrencos`."""

    db_name = "wrencos"
    restartable = True


class ExternalMongo:
    """A MongoDB the tests do not run: same face as `SessionMongo`, but it cannot be restarted
    by a test."""

    restartable = False

    def __init__(self, uri: str, db_name: str) -> None:
        self.uri = uri
        self.db_name = db_name

    def start(self) -> ExternalMongo:
        raise NotImplementedError("an external MongoDB is not started by the tests")

    def stop(self) -> None:
        raise NotImplementedError("an external MongoDB is not stopped by the tests")


DatabaseServer: TypeAlias = SessionMongo | ExternalMongo


def found(value: T | None) -> T:
    """`value`, which the test expects a store to have found (a document, a user): fails the
    test if it is None."""
    assert value is not None, "expected a stored value, got None"
    return value


@asynccontextmanager
async def fresh_database(server: DatabaseServer) -> AsyncIterator[AsyncDatabase]:
    """A database of its own (a unique name) on `server`, with the indexes the stores rely on;
    its client closed afterwards."""
    database = connect(DatabaseConfig(uri=server.uri, name=f"t{uuid4().hex[:8]}"))
    try:
        await ensure_indexes(database)
        yield database
    finally:
        await database.client.close()
