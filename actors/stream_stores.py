"""The stores a stream actor writes to and reads from, as one bundle.

The actor is given its stores instead of building them, so tests run the
real actor object against a database of their choosing; in a Ray actor
process they are connected from the actor's `DatabaseConfig` (`connect`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from persistence.audience import AudienceStore
from persistence.chat import ChatStore
from persistence.checkpoints import CheckpointStore
from persistence.database import DatabaseConfig, bounded_calls, connect
from persistence.journal import JournalStore
from persistence.slots import SlotStore


@dataclass(frozen=True, slots=True)
class StreamStores:
    """What a stream actor stores: its journal (one entry per commit, the
    fence between two instances), its checkpoints, the chat messages and
    viewers derived from the journal, and which spare serves which stream."""

    journal: JournalStore
    checkpoints: CheckpointStore
    chat: ChatStore
    audience: AudienceStore
    slots: SlotStore

    @classmethod
    def on(cls, db: AsyncDatabase, call_timeout_s: float | None = None) -> StreamStores:
        """Every store on database `db`; with `call_timeout_s`, each store call is bounded
        by it (`persistence.database.bounded_calls`) and raises `NetworkTimeout` past it."""
        stores = cls(
            journal=JournalStore(db),
            checkpoints=CheckpointStore(db),
            chat=ChatStore(db),
            audience=AudienceStore(db),
            slots=SlotStore(db),
        )
        if call_timeout_s is None:
            return stores
        return cls(
            journal=bounded_calls(stores.journal, call_timeout_s),
            checkpoints=bounded_calls(stores.checkpoints, call_timeout_s),
            chat=bounded_calls(stores.chat, call_timeout_s),
            audience=bounded_calls(stores.audience, call_timeout_s),
            slots=bounded_calls(stores.slots, call_timeout_s),
        )

    @classmethod
    def connect(cls, config: DatabaseConfig) -> StreamStores:
        """Every store on the database `config` names (the client connects lazily), each call
        bounded by the configured budget (`DatabaseConfig.timeout_s`). A call out of time raises
        `NetworkTimeout`, which the actor classifies as transient: retried while degraded."""
        return cls.on(stream_database(config), config.timeout_s)


def stream_database(config: DatabaseConfig) -> AsyncDatabase:
    """The database as a stream actor's stores use it: no `timeoutMS`, so that a cancelled
    task is never left running (see `persistence.database.connect`); `StreamStores.connect`
    bounds each call instead."""
    return connect(config, operation_timeout=False)
