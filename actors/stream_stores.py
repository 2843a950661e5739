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
from persistence.database import DatabaseConfig, connect
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
    def on(cls, db: AsyncDatabase) -> StreamStores:
        """Every store on database `db`."""
        return cls(
            journal=JournalStore(db),
            checkpoints=CheckpointStore(db),
            chat=ChatStore(db),
            audience=AudienceStore(db),
            slots=SlotStore(db),
        )

    @classmethod
    def connect(cls, config: DatabaseConfig) -> StreamStores:
        """Every store on the database `config` names (the client connects lazily), without
        a client-side operation timeout: the actor retries and classifies its storage calls itself."""
        return cls.on(stream_database(config))


def stream_database(config: DatabaseConfig) -> AsyncDatabase:
    """The database as a stream actor's stores use it (see `persistence.database.connect`)."""
    return connect(config, operation_timeout=False)
