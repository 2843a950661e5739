"""Connecting to MongoDB and the indexes every store relies on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import pymongo
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import NetworkTimeout, PyMongoError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """Where the data lives. Plain and picklable: actors get a copy and connect themselves."""

    uri: str
    name: str = "wrencos"
    write_concern: str = "majority"  # "majority", or a number of nodes such as "1"
    timeout_ms: int = 5000

    @property
    def timeout_s(self) -> float:
        """The budget of one database call, in seconds."""
        return self.timeout_ms / 1000

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
    stay bounded): for the stream actor, whose stores bound each call with
    `bounded_calls` instead. Why: PyMongo applies `timeoutMS` to every socket
    read and write through `asyncio.wait_for`, and Python 3.11's `wait_for` loses
    a cancellation that arrives as the inner call completes (CPython gh-86296,
    gh-107547; rewritten on `asyncio.timeout` in 3.12). A task cancelled during a
    database call then carries on as if nothing happened: measured, the actor's
    `close()` waited forever for its commit loop after a cancellation landed in a
    chat insert. Without `timeoutMS` PyMongo awaits the socket directly and the
    cancellation goes through.
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


async def within(seconds: float, call: Awaitable[T]) -> T:
    """`await call`, bounded by `seconds`. Out of time, `NetworkTimeout` is raised: a
    `PyMongoError` whose `.timeout` is True, like PyMongo's own timeouts ("try later").

    The call runs in a task of its own and the caller waits with `asyncio.wait`,
    which never loses the caller's cancellation (PyMongo still waits with 3.11's
    `wait_for` while it opens a connection, and that one can, see `connect`). A call
    out of time, or whose caller is cancelled, is cancelled and left to end on its
    own: PyMongo closes its connection; the caller does not wait for that."""
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait((task,), timeout=seconds)
    except asyncio.CancelledError:
        _abandon(task)
        raise
    if not done:
        _abandon(task)
        raise NetworkTimeout(f"the database did not answer within {seconds:g} s")
    return task.result()


def _abandon(task: asyncio.Future[Any]) -> None:
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # its outcome is nobody's now


class _BoundedCalls:
    """Every coroutine method of `inner`, bounded by `within(seconds, ...)`; other attributes as they are."""

    def __init__(self, inner: object, seconds: float) -> None:
        self._inner = inner
        self._seconds = seconds

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr
        seconds = self._seconds

        async def bounded(*args: Any, **kwargs: Any) -> Any:
            return await within(seconds, attr(*args, **kwargs))

        return bounded


def bounded_calls(store: T, seconds: float) -> T:
    """`store` with each of its `async` methods bounded by `seconds` (see `within`): for
    stores on a database connected with `operation_timeout=False`."""
    return cast(T, _BoundedCalls(store, seconds))  # same methods, same signatures; only their time is bounded


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
