"""Connecting to MongoDB and the indexes every store relies on."""

from __future__ import annotations

from dataclasses import dataclass

import pymongo
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """Where the data lives. Plain and picklable: actors get a copy and connect themselves."""

    uri: str
    name: str = "wrencos"
    write_concern: str = "majority"  # "majority", or a number of nodes such as "1"
    timeout_ms: int = 5000

    def redacted_uri(self) -> str:
        """The URI with any password replaced, safe for logs."""
        head, sep, tail = self.uri.partition("://")
        if "@" not in tail:
            return self.uri
        creds, _, rest = tail.partition("@")
        user = creds.split(":", 1)[0]
        return f"{head}{sep}{user}:***@{rest}"


def connect(config: DatabaseConfig, *, operation_timeout: bool = True) -> AsyncDatabase:
    """An `AsyncDatabase` with the configured write concern. The client connects lazily.

    Every database timeout is set here, in one place: `timeoutMS` bounds each
    operation including PyMongo's own retries, and server selection and connecting
    are bounded by the same budget. A call that runs out raises a `PyMongoError`
    whose `.timeout` is True ("try later"); the gateway answers it 503 + Retry-After.

    `operation_timeout=False` leaves out `timeoutMS` (server selection and connecting
    stay bounded): for the stream actor, whose storage calls go through its own retry
    and classification. Under `timeoutMS` its recovery path (reloading after a replay
    that differs) stopped answering cancellation in a test; until that is understood,
    its stores keep the behaviour they were tested with.
    """
    w: int | str = int(config.write_concern) if config.write_concern.isdigit() else config.write_concern
    client: AsyncMongoClient = AsyncMongoClient(
        config.uri,
        tz_aware=True,
        timeoutMS=config.timeout_ms if operation_timeout else None,  # a hung database costs at most this per call
        serverSelectionTimeoutMS=config.timeout_ms,
        connectTimeoutMS=config.timeout_ms,
        appname="wrencos-live",
    )
    return client.get_database(config.name, write_concern=WriteConcern(w=w))


async def ping(db: AsyncDatabase, timeout_s: float) -> bool:
    """True when the database answers a ping within `timeout_s`; never raises."""
    try:
        with pymongo.timeout(timeout_s):
            await db.command("ping")
    except PyMongoError:
        return False
    return True


async def ensure_indexes(db: AsyncDatabase) -> None:
    """Create the indexes the stores' reads need. Idempotent."""
    await db.users.create_index("email", unique=True)
    await db.streams.create_index([("status", 1), ("startTime", -1)])
    await db.chat_messages.create_index([("streamId", 1), ("seq", -1)])
    await db.stream_slots.create_index("streamId")
    await db.stream_journal.create_index([("streamId", 1), ("version", 1)])
    await db.stream_viewers.create_index("streamId")
    await db.viewer_samples.create_index([("streamId", 1), ("minute", 1)])
    await db.products.create_index([("deleted", 1), ("createdAt", -1)])
    await db.orders.create_index("idemKey", unique=True, partialFilterExpression={"idemKey": {"$type": "string"}})
    await db.orders.create_index([("userId", 1), ("createdAt", -1)])
    await db.orders.create_index([("streamId", 1), ("createdAt", 1)])
    await db.payments.create_index("slot", unique=True)
    await db.payments.create_index("idemKey", unique=True, partialFilterExpression={"idemKey": {"$type": "string"}})
    await db.payments.create_index([("orderId", 1), ("createdAt", -1)])
    await db.flash_sales.create_index([("streamId", 1), ("createdAt", -1)])
    await db.stream_views.create_index([("streamId", 1), ("at", 1)])
