"""The real `StreamActor` object, run in the test's event loop without Ray,
against the real embedded database: group commit (stored before published),
checkpoint cadence and spacing, gateway leases, spare adoption, recovery
after a restart, and fencing between two instances of the same stream.

Slow or blocked writes are made by wrapping a real store's method (the store
itself is real). Where time must pass, the tests wait on a condition with a
timeout, never a bare sleep.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from uuid import uuid4

import pytest
from pymongo.errors import AutoReconnect, DocumentTooLarge

from actors.call_policy import Fenced
from actors.config import ActorConfig
from actors.registry_actor import announced
from actors.stream_actor import REPLAY_RELOADS, StreamActor
from actors.stream_stores import StreamStores, stream_database
from core.commands import Chat, Join, Leave
from core.live_set import stream_meta
from core.results import Result
from persistence.database import DatabaseConfig, connect, ensure_indexes
from persistence.embedded import EmbeddedMongo
from persistence.streams import StreamStore


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Check `condition` every 20 ms until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


@dataclass
class SaveCall:
    """One call of `CheckpointStore.save`: when it started, how long it took, which version."""

    started: float
    took: float
    version: int


class Cluster:
    """Stream actors created in this loop on one fresh database, each with
    stores of its own client (as separate processes would have); all closed
    at the end of the test."""

    def __init__(self, config: ActorConfig) -> None:
        self.config = config
        self.actors: list[StreamActor] = []
        self._dbs: list[Any] = []

    def stores(self) -> StreamStores:
        return StreamStores.on(self.database(), self.config.db.timeout_s)  # bounded like an actor process's (`connect`)

    def database(self) -> Any:
        """A client of its own on the cluster's database, closed at the end."""
        db = stream_database(self.config.db)
        self._dbs.append(db)
        return db

    def actor(
        self,
        stream_id: str | None,
        meta: dict[str, Any] | None = None,
        *,
        stores: StreamStores | None = None,
        name: str | None = None,
        **config: Any,
    ) -> StreamActor:
        if meta is None and stream_id is not None:
            meta = meta_of(stream_id)
        actor = StreamActor(stream_id, meta, replace(self.config, **config), stores or self.stores(), name=name)
        self.actors.append(actor)
        return actor

    async def close(self) -> None:
        """Close every actor, then every client; a step that hangs fails the test and says which."""
        for actor in self.actors:
            await asyncio.wait_for(actor.close(), 10.0)
        for db in self._dbs:
            await asyncio.wait_for(db.client.close(), 10.0)


def meta_of(stream_id: str) -> dict[str, Any]:
    return {"streamId": stream_id, "title": f"Stream {stream_id}", "startTime": "2026-11-30T12:00:00.000Z"}


def new_stream_id() -> str:
    return f"s{uuid4().hex[:8]}"


def chat(text: str, session: str = "sess-1") -> Chat:
    return Chat(username="ann", message=text, is_admin=False, session_id=session)


@pytest.fixture
async def cluster(embedded_db: EmbeddedMongo) -> AsyncIterator[Cluster]:
    db_config = DatabaseConfig(uri=embedded_db.uri, name=f"t{uuid4().hex[:8]}")
    setup = connect(db_config)
    await ensure_indexes(setup)
    await setup.client.close()
    # Short intervals so that cadence and leases show within a test; a long snapshot
    # interval unless a test is about checkpoints (then only `flush` and `stop` write one).
    cluster = Cluster(ActorConfig(db=db_config, commit_interval=0.005, snapshot_interval=60.0, gateway_lease=60.0))
    try:
        yield cluster
    finally:
        await cluster.close()


def record_saves(stores: StreamStores, delay: float = 0.0) -> list[SaveCall]:
    """Wrap the real `stores.checkpoints.save`: each call (after `delay`
    seconds, a slow write) is recorded once it returns."""
    calls: list[SaveCall] = []
    save = stores.checkpoints.save

    async def recorded(stream_id: str, version: int, state: dict[str, Any]) -> bool:
        started = time.monotonic()
        if delay:
            await asyncio.sleep(delay)
        stored = await save(stream_id, version, state)
        calls.append(SaveCall(started, time.monotonic() - started, version))
        return stored

    stores.checkpoints.save = recorded  # type: ignore[method-assign]  # a slow write, on the real store
    return calls


@pytest.fixture
def keep_submitting() -> Iterator[Callable[[StreamActor, str], asyncio.Task[None]]]:
    """Start a task that submits a chat message every 20 ms (a busy stream)."""
    tasks: list[asyncio.Task[None]] = []

    async def submit_forever(actor: StreamActor, gateway_id: str) -> None:
        n = 0
        while True:
            n += 1
            await actor.submit(gateway_id, f"{gateway_id}-{n}", [chat(f"m{n}")])
            await asyncio.sleep(0.02)

    def start(actor: StreamActor, gateway_id: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(submit_forever(actor, gateway_id))
        tasks.append(task)
        return task

    yield start
    for task in tasks:
        task.cancel()


async def versions(actor: StreamActor) -> tuple[int, int]:
    """(last journal version stored, last checkpoint version stored)."""
    info = await actor.info()
    return info["version"], info["snapshotVersion"]


# ---------------------------------------------------------------- group commit


async def test_commands_are_journaled_before_poll_returns_their_events(cluster: Cluster) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    actor = cluster.actor(sid, stores=stores)
    snap = await actor.ready()
    seq, epoch = snap["seq"], snap["epoch"]

    append = stores.journal.append
    entered, release = asyncio.Event(), asyncio.Event()

    async def held_append(stream_id: str, version: int, writer: str, entry: dict[str, Any]) -> None:
        entered.set()
        await release.wait()
        await append(stream_id, version, writer, entry)

    stores.journal.append = held_append  # type: ignore[method-assign]  # the real append, held back by the test

    poll = asyncio.create_task(actor.poll("gw1", seq, epoch, 5.0))
    submit = asyncio.create_task(actor.submit("gw1", "b1", [Join("sess-1"), chat("hello")]))
    await asyncio.wait_for(entered.wait(), 5.0)
    # The journal write is under way and not finished: nothing may be published or answered.
    done, _ = await asyncio.wait({poll, submit}, timeout=0.3)
    assert done == set()

    release.set()
    result = await asyncio.wait_for(poll, 5.0)
    stored = await stores.journal.after(sid, 0)
    journaled = [(int(s), text) for entry in stored for s, text in entry["events"]]
    assert result.events, "the poll returned no events"
    assert all(event in journaled for event in result.events)
    answers = await asyncio.wait_for(submit, 5.0)
    assert [a.ok for a in answers] == [True, True]
    assert any("hello" in text for _, text in result.events)


async def test_a_batch_submitted_again_is_applied_once_with_the_first_answers(cluster: Cluster) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    actor = cluster.actor(sid, stores=stores)
    await actor.ready()
    first = await actor.submit("gw1", "b1", [chat("once")])
    again = await actor.submit("gw1", "b1", [chat("once")])
    assert again == first
    stored = await stores.chat.all_in_order(sid)
    assert [m["message"] for m in stored] == ["once"]
    assert (await actor.snapshot())["chatCount"] == 1


async def test_while_the_journal_cannot_be_written_nothing_is_published_or_answered(cluster: Cluster) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    append = stores.journal.append
    down = asyncio.Event()

    async def failing_append(stream_id: str, version: int, writer: str, entry: dict[str, Any]) -> None:
        if down.is_set():
            raise AutoReconnect("the database is down (injected by the test)")
        await append(stream_id, version, writer, entry)

    stores.journal.append = failing_append  # type: ignore[method-assign]  # the real append, failing while `down`
    actor = cluster.actor(sid, stores=stores, max_pending_commands=3)
    snap = await actor.ready()
    down.set()
    waiting = asyncio.create_task(actor.submit("gw1", "b1", [chat("waits for the database")]))

    async def unhealthy() -> bool:
        return (await actor.info())["healthy"] is False

    await wait_until(unhealthy, 3.0, "the actor reports itself unhealthy")
    polled = await actor.poll("gw2", snap["seq"], snap["epoch"], 0.0)
    assert polled.events == [] and polled.healthy is False
    assert not waiting.done()
    queued = asyncio.create_task(actor.submit("gw1", "b2", [chat("queued"), chat("queued too")]))

    async def two_pending() -> bool:
        return (await actor.info())["pendingCommands"] == 2

    await wait_until(two_pending, 3.0, "two commands waiting in memory")
    # Two commands wait in memory; two more would exceed `max_pending_commands`: refused at once.
    refused = await asyncio.wait_for(actor.submit("gw1", "b3", [chat("one too many"), chat("two too many")]), 2.0)
    busy = Result.rejected("the stream cannot store right now; try again shortly", "busy", retryAfter=1)
    assert refused == [busy] * 2

    down.clear()
    assert (await asyncio.wait_for(waiting, 5.0))[0].ok
    assert [r.ok for r in await asyncio.wait_for(queued, 5.0)] == [True, True]
    assert (await actor.info())["healthy"] is True
    polled = await actor.poll("gw2", snap["seq"], snap["epoch"], 1.0)
    assert polled.healthy and len(polled.events) >= 3


# ---------------------------------------------------------------- failed commits (crash-only)

FAILED = Result.rejected("the stream could not store this; try again", "internal", retryAfter=1)


async def test_an_exception_in_a_commit_answers_its_commands_and_the_actor_reloads_from_its_journal(
    cluster: Cluster,
) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    actor = cluster.actor(sid, stores=stores, fault_inject_commit="BOOM")
    await actor.ready()
    assert (await actor.submit("gw1", "b1", [Join("sess-1"), chat("stored")]))[1].ok
    before = await actor.snapshot()
    version = (await versions(actor))[0]

    # Several submits, each failing in its commit after the commit was applied to the state (the
    # hook raises between applying and storing): every one is answered, none waits.
    failing = [
        asyncio.create_task(actor.submit("gw1", f"f{n}", [chat(f"BOOM {n}"), chat(f"with it {n}")])) for n in range(3)
    ]
    answers = await asyncio.wait_for(asyncio.gather(*failing), 10.0)
    assert answers == [[FAILED, FAILED]] * 3

    # Reloaded from the checkpoint and journal: the seq the applied-but-unstored commits took is
    # given back, nothing of them is stored or published, and the stream serves on from there.
    after = await asyncio.wait_for(actor.snapshot(), 5.0)
    assert after["seq"] == before["seq"]
    assert after["chat"] == before["chat"] and after["chatCount"] == 1
    assert (await versions(actor))[0] == version
    assert await actor.events_since(before["seq"], before["epoch"]) == []
    answer = await asyncio.wait_for(actor.submit("gw1", "b2", [chat("served again")]), 5.0)
    assert answer[0].ok and answer[0].seq == before["seq"] + 1
    assert [m["message"] for m in await stores.chat.all_in_order(sid)] == ["stored", "served again"]
    assert (await actor.info())["healthy"] is True


async def test_while_a_failed_commit_reloads_the_waiting_commands_stay_bounded(cluster: Cluster) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    load = stores.checkpoints.load
    reloading, release = asyncio.Event(), asyncio.Event()

    async def held_reload(stream_id: str) -> dict[str, Any] | None:
        if reloading.is_set():  # the reload after the failed commit: held by the test
            await release.wait()
        return await load(stream_id)

    stores.checkpoints.load = held_reload  # type: ignore[method-assign]  # the real load, held back by the test
    actor = cluster.actor(sid, stores=stores, fault_inject_commit="BOOM", max_pending_commands=3)
    await actor.ready()
    reloading.set()
    assert await asyncio.wait_for(actor.submit("gw1", "f1", [chat("BOOM")]), 5.0) == [FAILED]

    # The reload is held: commands wait for it, counted, up to `max_pending_commands`.
    waiting = asyncio.create_task(actor.submit("gw1", "b1", [chat("waits"), chat("waits too")]))

    async def two_waiting() -> bool:
        return (await actor.info())["pendingCommands"] == 2

    await wait_until(two_waiting, 3.0, "two commands waiting for the reload")
    refused = await asyncio.wait_for(actor.submit("gw2", "b2", [chat("one too many"), chat("two too many")]), 2.0)
    busy = Result.rejected("the stream cannot store right now; try again shortly", "busy", retryAfter=1)
    assert refused == [busy] * 2
    assert not waiting.done()

    release.set()
    assert [r.ok for r in await asyncio.wait_for(waiting, 5.0)] == [True, True]
    assert (await actor.info())["pendingCommands"] == 0
    assert [m["message"] for m in await stores.chat.all_in_order(sid)] == ["waits", "waits too"]


async def test_a_permanent_storage_error_fails_the_commit_once_and_the_next_commit_is_stored(
    cluster: Cluster,
) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    append = stores.journal.append
    too_large: list[int] = []

    async def append_or_too_large(stream_id: str, version: int, writer: str, entry: dict[str, Any]) -> None:
        if "HUGE" in repr(entry):
            too_large.append(version)
            raise DocumentTooLarge("BSON document too large (17000000 bytes) (injected by the test)")
        await append(stream_id, version, writer, entry)

    stores.journal.append = append_or_too_large  # type: ignore[method-assign]  # the real append, refusing one entry
    actor = cluster.actor(sid, stores=stores)
    before = await actor.ready()

    answers = await asyncio.wait_for(actor.submit("gw1", "b1", [chat("HUGE"), chat("in the same commit")]), 5.0)
    assert answers == [FAILED, FAILED]
    assert len(too_large) == 1  # never tried again
    # The commit loop goes on (no lock held by a retry): snapshots and the next commit are answered.
    assert (await asyncio.wait_for(actor.snapshot(), 2.0))["seq"] == before["seq"]
    answer = await asyncio.wait_for(actor.submit("gw1", "b2", [chat("next")]), 5.0)
    assert answer[0].ok and answer[0].seq == before["seq"] + 1
    assert len(too_large) == 1
    assert [m["message"] for m in await stores.chat.all_in_order(sid)] == ["next"]
    info = await actor.info()
    assert info["healthy"] is True and info["degraded"] is False


async def test_a_transient_storage_error_is_retried_while_the_stream_reports_degraded(cluster: Cluster) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    append = stores.journal.append
    calls: list[int] = []
    second_failure = asyncio.Event()

    async def flaky_append(stream_id: str, version: int, writer: str, entry: dict[str, Any]) -> None:
        calls.append(version)
        if len(calls) == 2:
            await second_failure.wait()  # held until the test has seen the stream degraded
        if len(calls) <= 2:
            raise AutoReconnect("connection reset (injected by the test)")
        await append(stream_id, version, writer, entry)

    actor = cluster.actor(sid, stores=stores)
    before = await actor.ready()
    stores.journal.append = flaky_append  # type: ignore[method-assign]  # the real append, failing twice
    submit = asyncio.create_task(actor.submit("gw1", "b1", [chat("kept"), chat("kept too")]))

    async def degraded() -> bool:
        return (await actor.info())["degraded"] is True

    await wait_until(degraded, 5.0, "the stream reports itself degraded")
    polled = await actor.poll("gw2", before["seq"], before["epoch"], 0.0)
    assert polled.healthy is False and polled.events == []
    assert not submit.done()
    second_failure.set()

    assert [a.ok for a in await asyncio.wait_for(submit, 5.0)] == [True, True]
    assert len(calls) == 3 and len(set(calls)) == 1  # the same entry, tried three times
    assert (await actor.info())["degraded"] is False
    assert [m["message"] for m in await stores.chat.all_in_order(sid)] == ["kept", "kept too"]


async def test_a_fenced_instance_answers_its_waiting_calls_and_closes_itself(cluster: Cluster) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    append = stores.journal.append
    entered, release = asyncio.Event(), asyncio.Event()

    async def held_append(stream_id: str, version: int, writer: str, entry: dict[str, Any]) -> None:
        if "held" in repr(entry):
            entered.set()
            await release.wait()
        await append(stream_id, version, writer, entry)

    stores.journal.append = held_append  # type: ignore[method-assign]  # the real append, held back by the test
    old = cluster.actor(sid, stores=stores)
    snap = await old.ready()
    held = asyncio.create_task(old.submit("gw1", "b1", [chat("held")]))
    await asyncio.wait_for(entered.wait(), 5.0)
    waiting = asyncio.create_task(old.submit("gw2", "b2", [chat("waits in the inbox")]))
    polling = asyncio.create_task(old.poll("gw3", snap["seq"], snap["epoch"], 30.0))

    new = cluster.actor(sid)  # takes over and writes the version the old one is writing
    await new.ready()
    assert (await new.submit("gw1", "n1", [chat("from the new one")]))[0].ok
    release.set()

    # Every call waiting on the old instance is told `Fenced` (the long poll too), at once.
    for call in (held, waiting, polling):
        with pytest.raises(Fenced):
            await asyncio.wait_for(call, 5.0)

    async def closed() -> bool:
        # Private, for want of a process to watch: its loops have ended (in Ray the actor exits).
        return old._committer.done() and old._exiting is not None and old._exiting.done()

    await wait_until(closed, 5.0, "the fenced instance closed itself")
    info = await old.info()
    assert info["fenced"] is True and info["pendingCommands"] == 0
    assert (await new.submit("gw1", "b1", [chat("held")]))[0].ok  # the gateway's resend, applied once
    assert [m["message"] for m in await stores.chat.all_in_order(sid)] == ["from the new one", "held"]


async def test_a_replay_that_differs_from_what_was_published_is_loaded_again(cluster: Cluster) -> None:
    sid = new_stream_id()
    first = cluster.actor(sid)
    await first.ready()
    await first.submit("gw1", "b1", [Join("sess-1"), chat("one")])
    await first.submit("gw1", "b2", [chat("two")])
    before = await first.snapshot()
    await first.close()  # no checkpoint since: recovery replays the journal

    stores = cluster.stores()
    after = stores.journal.after
    reads: list[int] = []

    async def after_once_tampered(stream_id: str, version: int) -> list[dict[str, Any]]:
        entries = await after(stream_id, version)
        reads.append(version)
        if len(reads) == 1:  # the first read: one published event is not what the replay makes
            seq, text = entries[-1]["events"][-1]
            entries[-1]["events"][-1] = [seq, text.replace("two", "TWO")]
        return entries

    stores.journal.after = after_once_tampered  # type: ignore[method-assign]  # the real read, altered once
    second = cluster.actor(sid, stores=stores)
    recovered = await asyncio.wait_for(second.ready(), 10.0)
    assert len(reads) == 2  # served only after a second load agreed with what was published
    assert recovered["seq"] == before["seq"] and recovered["chat"] == before["chat"]
    assert (await second.submit("gw1", "b3", [chat("three")]))[0].ok


async def test_a_replay_that_keeps_differing_is_loaded_a_bounded_number_of_times(cluster: Cluster) -> None:
    sid = new_stream_id()
    first = cluster.actor(sid)
    await first.ready()
    await first.submit("gw1", "b1", [chat("one")])
    await first.close()

    stores = cluster.stores()
    after = stores.journal.after
    reads: list[int] = []

    async def after_tampered(stream_id: str, version: int) -> list[dict[str, Any]]:
        entries = await after(stream_id, version)
        reads.append(version)
        seq, text = entries[-1]["events"][-1]
        entries[-1]["events"][-1] = [seq, text.replace("one", "ONE")]
        return entries

    stores.journal.after = after_tampered  # type: ignore[method-assign]  # the real read, always altered
    second = cluster.actor(sid, stores=stores)
    await asyncio.wait_for(second.ready(), 10.0)  # serves in the end: the journal is what was stored
    assert len(reads) == REPLAY_RELOADS + 1


# ---------------------------------------------------------------- checkpoints


async def test_a_checkpoint_is_written_after_the_snapshot_interval_and_not_sooner(
    cluster: Cluster, keep_submitting: Callable[[StreamActor, str], asyncio.Task[None]]
) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    saves = record_saves(stores)
    actor = cluster.actor(sid, stores=stores, snapshot_interval=0.3)
    await actor.ready()
    assert [c.version for c in saves] == [0]  # a new stream: its first checkpoint as it is created
    busy = keep_submitting(actor, "gw1")

    async def three_in_background() -> bool:
        return len(saves) >= 4

    await wait_until(three_in_background, 5.0, "three background checkpoints of a busy stream")
    busy.cancel()
    starts = [c.started for c in saves]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Commits come every ~20 ms; checkpoints only every 0.3 s (less the moment between
    # taking one and its write starting, longer on a loaded machine).
    assert min(gaps) >= 0.3 - 0.1, gaps
    assert all(b.version > a.version for a, b in itertools.pairwise(saves))

    # A last command, then none: its commit gets a checkpoint too, without a flush.
    await actor.submit("gw1", "last", [chat("the last one")])
    last = (await versions(actor))[0]

    async def caught_up() -> bool:
        return (await versions(actor))[1] >= last

    await wait_until(caught_up, 3.0, "a checkpoint of the last journal version")
    stored = await stores.checkpoints.load(sid)
    assert stored is not None and stored["version"] >= last


async def test_slow_checkpoint_writes_space_the_next_ones_out(
    cluster: Cluster, keep_submitting: Callable[[StreamActor, str], asyncio.Task[None]]
) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    saves = record_saves(stores, delay=0.03)  # 40 x 30 ms: the next at least 1.2 s later
    actor = cluster.actor(sid, stores=stores, snapshot_interval=0.05)
    await actor.ready()
    busy = keep_submitting(actor, "gw1")

    async def two_in_background() -> bool:
        return len(saves) >= 3

    await wait_until(two_in_background, 8.0, "two background checkpoints of a busy stream")
    busy.cancel()
    for before, after in itertools.pairwise(saves):
        gap = after.started - before.started
        assert gap >= 40 * before.took - 0.05, (gap, before.took)
        assert gap >= 1.2 - 0.05  # not the configured 0.05 s
    assert all(call.took < 0.5 for call in saves)  # so the 20 s cap is not what spaced them


async def test_commits_go_on_while_a_checkpoint_is_written_and_flush_waits_for_it(cluster: Cluster) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    saves = record_saves(stores)
    save = stores.checkpoints.save
    entered, release = asyncio.Event(), asyncio.Event()

    async def held_save(stream_id: str, version: int, state: dict[str, Any]) -> bool:
        if version >= 1 and not release.is_set():  # the first background checkpoint: held by the test
            entered.set()
            await release.wait()
        return await save(stream_id, version, state)

    stores.checkpoints.save = held_save  # type: ignore[method-assign]  # the real save, held back by the test
    actor = cluster.actor(sid, stores=stores, snapshot_interval=0.05)
    await actor.ready()
    await actor.submit("gw1", "b1", [chat("one")])
    await asyncio.wait_for(entered.wait(), 5.0)

    # The checkpoint write is held: commits go on and are answered.
    answers = await asyncio.wait_for(actor.submit("gw1", "b2", [chat("two")]), 2.0)
    assert answers[0].ok
    flush = asyncio.create_task(actor.flush())
    done, _ = await asyncio.wait({flush}, timeout=0.3)
    assert done == set()  # flush waits for the checkpoint being written

    release.set()
    await asyncio.wait_for(flush, 5.0)
    journal, checkpoint = await versions(actor)
    assert checkpoint == journal >= 2
    assert [c.version for c in saves][-1] == journal
    # One write at a time: none started before the one before it had finished.
    for before, after in itertools.pairwise(saves):
        assert after.started >= before.started + before.took - 0.001


# ---------------------------------------------------------------- leases


async def test_a_silent_gateway_has_its_viewers_removed_after_its_lease(cluster: Cluster) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    actor = cluster.actor(sid, stores=stores, gateway_lease=0.4)
    snap = await actor.ready()
    last_heard = time.monotonic()  # before the call: the actor hears from it a little later
    assert [r.ok for r in await actor.submit("gw-silent", "a1", [Join("sess-a"), Join("sess-b")])] == [True, True]
    assert [r.ok for r in await actor.submit("gw-alive", "b1", [Join("sess-c")])] == [True]

    async def keep_polling() -> None:
        after, epoch = snap["seq"], snap["epoch"]
        while True:
            result = await actor.poll("gw-alive", after, epoch, 0.1)
            after = result.events[-1][0] if result.events else after

    alive = asyncio.create_task(keep_polling())
    try:

        async def silent_one_gone() -> bool:
            return (await actor.snapshot())["streamData"]["viewerCount"] == 1

        await wait_until(silent_one_gone, 5.0, "the silent gateway's viewers removed")
        assert time.monotonic() - last_heard >= 0.4
        assert (await actor.info())["gateways"] == ["gw-alive"]
    finally:
        alive.cancel()
    entries = await stores.journal.after(sid, 0)
    assert [e["expired"] for e in entries if e["expired"]] == [["gw-silent"]]


async def test_viewers_and_each_minutes_peak_are_recorded_for_analytics(cluster: Cluster) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    actor = cluster.actor(sid, stores=stores)
    await actor.ready()
    await actor.submit("gw1", "b1", [Join("sess-1"), Join("sess-2"), Join("sess-3")])
    await actor.submit("gw1", "b2", [Leave("sess-1"), Join("sess-2")])

    async def recorded() -> bool:
        samples = await stores.audience.samples(sid)
        return await stores.audience.unique_viewers(sid) == 3 and any(s["viewers"] == 3 for s in samples)

    # Stored after the commit is answered (derived from the journal): wait for it.
    await wait_until(recorded, 3.0, "three viewers and a peak of three recorded")
    samples = await stores.audience.samples(sid)
    assert all(s["viewers"] in (2, 3) for s in samples)  # 3, then 2 only if a new minute began


# ---------------------------------------------------------------- idle


async def test_an_idle_stream_runs_no_timer_of_its_own_and_wakes_for_a_command(cluster: Cluster) -> None:
    """Timed work (a checkpoint of the last commits, a lease running out) is
    armed by activity and done without any further call; after it, the commit
    loop sleeps until a command comes (before: it turned every second)."""
    sid = new_stream_id()
    stores = cluster.stores()
    actor = cluster.actor(sid, stores=stores, snapshot_interval=0.2, gateway_lease=0.4, commit_interval=0.5)
    snap = await actor.ready()
    await actor.submit("gw1", "b1", [Join("sess-a"), chat("hello")])
    await actor.poll("gw1", snap["seq"], snap["epoch"], 0.0)

    async def settled() -> bool:
        info = await actor.info()
        viewers = (await actor.snapshot())["streamData"]["viewerCount"]
        return info["gateways"] == [] and viewers == 0 and info["snapshotVersion"] == info["version"]

    # Neither the lease's end nor the checkpoint is asked for: the actor arms them itself.
    await wait_until(settled, 5.0, "the silent gateway's lease ended and the last commit checkpointed")
    turns: list[float] = []
    commit_once = actor._commit_once

    async def counted(force: bool = False) -> None:
        turns.append(time.monotonic())
        await commit_once(force)

    actor._commit_once = counted  # type: ignore[method-assign]  # the real commit, counted
    await asyncio.sleep(2.5)  # time must pass to show that nothing happens in it
    assert turns == []  # idle: no commit loop turn at all (the old loop turned every 1 s)

    started = time.monotonic()
    [answer] = await asyncio.wait_for(actor.submit("gw1", "b2", [chat("back")]), 5.0)
    assert answer.ok
    # Quiet for longer than the commit interval: committed at once, not at the interval's end.
    assert len(turns) == 1 and time.monotonic() - started < 0.5


# ---------------------------------------------------------------- spares


async def test_a_spare_adopts_a_stream_serves_it_and_records_its_slot(cluster: Cluster) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    spare = cluster.actor(None, stores=stores, name="slot:test-1")
    assert await spare.warm() is True
    snap = await spare.adopt(sid, meta_of(sid))
    assert snap["streamData"]["streamId"] == sid
    assert snap["streamData"]["title"] == f"Stream {sid}"
    assert await stores.slots.assignment("slot:test-1") == (sid, meta_of(sid), True)
    assert await stores.slots.slot_of(sid) == "slot:test-1"

    assert (await spare.adopt(sid, meta_of(sid)))["epoch"] == snap["epoch"]  # idempotent
    with pytest.raises(RuntimeError, match="already serves"):
        await spare.adopt(new_stream_id(), meta_of("other"))

    answers = await spare.submit("gw1", "b1", [chat("on a spare")])
    assert answers[0].ok
    assert [m["message"] for m in await stores.chat.all_in_order(sid)] == ["on a spare"]
    seq = (await spare.snapshot())["seq"]
    await spare.flush()
    await spare.close()

    # Ray restarts the spare's process: it comes back without a stream, reads its slot, serves it.
    again = cluster.actor(None, name="slot:test-1")
    snap = await again.ready()
    assert snap["streamData"]["streamId"] == sid
    assert snap["seq"] == seq


async def test_a_prepared_stream_loads_ahead_and_goes_live_in_memory_with_the_records_meta(cluster: Cluster) -> None:
    """Prepared ahead (assignment stored, state loaded), not live (calls wait);
    going live writes nothing and serves the record's meta (the go-live's start
    time, an edit made since); a restart before any checkpoint took that meta
    still serves it, read from the record."""
    stores = cluster.stores()
    streams = StreamStore(cluster.database())
    sid = (await streams.create(title="Before", scheduled_at="2026-12-01T10:00:00.000Z"))["_id"]
    spare = cluster.actor(None, stores=stores, name="slot:prep-1")
    prepared = await spare.prepare(sid, stream_meta(await streams.get(sid) or {}))
    assert prepared["streamData"]["streamId"] == sid and prepared["streamData"]["title"] == "Before"
    assert await stores.slots.assignment("slot:prep-1") == (sid, stream_meta(await streams.get(sid) or {}), False)
    assert await stores.checkpoints.load(sid) is not None, "loaded (and created) ahead of the go-live"
    assert not (await spare.info())["loaded"]
    with pytest.raises(TimeoutError):  # not live: a viewer's call waits, as on a spare
        await asyncio.wait_for(spare.submit("gw1", "early", [chat("too early")]), 0.5)
    assert await stores.chat.all_in_order(sid) == []
    assert (await spare.prepare(sid, meta_of(sid)))["epoch"] == prepared["epoch"]  # idempotent
    with pytest.raises(RuntimeError, match="already serves"):
        await spare.prepare(new_stream_id(), meta_of("other"))

    await streams.update_unless_live(sid, {"title": "After"})  # edited after it was prepared
    start_time = "2026-12-01T10:00:01.234Z"
    record = (await streams.mark_live_many([sid], start_time))[sid]
    saves = record_saves(stores)
    snap = await asyncio.wait_for(spare.go_live(stream_meta(record)), 5.0)
    assert snap["streamData"]["startTime"] == start_time and snap["streamData"]["title"] == "After"
    assert saves == [] and await versions(spare) == (0, 0), "going live writes nothing"
    shown = announced(prepared, stream_meta(record))  # what the registry announces without asking the actor
    assert (shown["streamData"], shown["seq"], shown["epoch"]) == (snap["streamData"], snap["seq"], snap["epoch"])
    assert (await spare.go_live(stream_meta(record)))["epoch"] == snap["epoch"]  # idempotent
    [answer] = await spare.submit("gw1", "b1", [chat("live now")])
    assert answer.ok
    seq = (await spare.snapshot())["seq"]
    await spare.close()  # dies before a checkpoint stored the new meta

    again = cluster.actor(None, name="slot:prep-1")
    snap = await asyncio.wait_for(again.ready(), 10.0)
    assert snap["streamData"]["startTime"] == start_time and snap["streamData"]["title"] == "After"
    assert snap["seq"] == seq and snap["epoch"] == (await stored_epoch(stores, sid))


async def stored_epoch(stores: StreamStores, stream_id: str) -> str:
    doc = await stores.checkpoints.load(stream_id)
    assert doc is not None
    return str(doc["epoch"])


async def test_a_prepared_actor_restarted_before_its_go_live_is_prepared_again_and_goes_live_when_called(
    cluster: Cluster,
) -> None:
    stores = cluster.stores()
    streams = StreamStore(cluster.database())
    sid = (await streams.create(title="Later", scheduled_at="2026-12-01T10:00:00.000Z"))["_id"]
    first = cluster.actor(None, stores=stores, name="slot:prep-2")
    await first.prepare(sid, stream_meta(await streams.get(sid) or {}))
    await first.close()

    again = cluster.actor(None, name="slot:prep-2")
    with pytest.raises(TimeoutError):  # its record is still scheduled: prepared, not live
        await asyncio.wait_for(again.ready(), 1.0)
    assert not (await again.info())["loaded"]
    record = (await streams.mark_live_many([sid], "2026-12-01T10:00:02.000Z"))[sid]
    # Nobody tells it: the next call finds its record live, and it goes live with the record's meta.
    snap = await asyncio.wait_for(again.snapshot(), 5.0)
    assert snap["streamData"]["streamId"] == sid and snap["streamData"]["startTime"] == record["startTime"]
    assert (await again.info())["loaded"]
    assert (await again.go_live(stream_meta(record)))["epoch"] == snap["epoch"]  # told as well: the same

    lone = cluster.actor(None, stores=stores, name="slot:prep-3")
    with pytest.raises(RuntimeError, match="no stream to go live with"):
        await asyncio.wait_for(lone.go_live(meta_of("x")), 5.0)


# ---------------------------------------------------------------- recovery


async def test_a_restart_recovers_from_the_checkpoint_and_the_journal_after_it(cluster: Cluster) -> None:
    sid = new_stream_id()
    first = cluster.actor(sid)
    snap = await first.ready()
    await first.submit("gw1", "b1", [Join("sess-1"), chat("before the checkpoint")])
    await first.flush()
    at_checkpoint = await versions(first)
    after = await first.poll("gw1", snap["seq"], snap["epoch"], 0.0)
    await first.submit("gw1", "b2", [chat("after the checkpoint")])
    await first.submit("gw1", "b3", [chat("and another")])
    before = await first.snapshot()
    journal_version = (await versions(first))[0]
    assert journal_version > at_checkpoint[0]
    published = await first.events_since(after.events[-1][0], before["epoch"])
    await first.close()  # the process dies: nothing more is stored

    second = cluster.actor(sid)
    recovered = await second.ready()
    assert recovered["seq"] == before["seq"]
    assert recovered["epoch"] == before["epoch"]
    assert recovered["chat"] == before["chat"]
    assert recovered["streamData"] == before["streamData"]
    assert await versions(second) == (journal_version, at_checkpoint[0])  # checkpoint plus journal replayed
    # The event log is refilled from the journal: a gateway goes on from its position.
    assert published
    assert await second.events_since(after.events[-1][0], before["epoch"]) == published
    answers = await second.submit("gw1", "b2", [chat("after the checkpoint")])
    assert answers[0].ok and answers[0].seq is not None and answers[0].seq <= before["seq"]  # the first answer


# ---------------------------------------------------------------- fencing


async def test_a_second_instance_taking_over_fences_the_first_through_the_journal(cluster: Cluster) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    old = cluster.actor(sid, stores=stores)
    await old.ready()
    assert (await old.submit("gw1", "b1", [chat("from the old one")]))[0].ok

    new = cluster.actor(sid)  # e.g. Ray restarted the actor while the old process still ran
    await new.ready()
    assert (await new.submit("gw1", "b2", [chat("from the new one")]))[0].ok

    # Not stored: the waiting call is told `Fenced`, so the gateway sends the batch to the new one.
    with pytest.raises(Fenced):
        await old.submit("gw1", "b3", [chat("lost"), chat("also lost")])
    with pytest.raises(Fenced):
        await old.poll("gw1", 0, None, 0.0)
    with pytest.raises(Fenced):
        await old.submit("gw1", "b4", [chat("refused")])
    assert (await old.info())["healthy"] is False

    assert (await new.submit("gw1", "b5", [chat("still served")]))[0].ok
    messages = [m["message"] for m in await stores.chat.all_in_order(sid)]
    assert messages == ["from the old one", "from the new one", "still served"]
    entries = await stores.journal.after(sid, 0)
    writers = [e["writer"] for e in entries]
    assert writers == [old.incarnation] + [new.incarnation] * (len(writers) - 1)


async def test_a_newer_checkpoint_fences_an_older_instance_that_flushes(cluster: Cluster) -> None:
    sid = new_stream_id()
    old = cluster.actor(sid)
    await old.ready()
    await old.submit("gw1", "b1", [chat("one")])
    new = cluster.actor(sid)
    await new.ready()
    await new.submit("gw1", "b2", [chat("two")])
    await new.flush()  # a checkpoint at a version the old one never reached

    with pytest.raises(Fenced):
        await old.flush()
    with pytest.raises(Fenced):
        await old.snapshot()
    assert (await new.snapshot())["chatCount"] == 2


async def test_stop_publishes_the_end_and_stores_the_final_state(cluster: Cluster) -> None:
    sid = new_stream_id()
    stores = cluster.stores()
    actor = cluster.actor(sid, stores=stores)
    snap = await actor.ready()
    await actor.submit("gw1", "b1", [Join("sess-1"), chat("bye")])
    stats = await actor.stop()
    assert stats["chatCount"] == 1 and stats["totalJoins"] == 1
    assert await actor.stop() == stats  # idempotent
    result = await actor.poll("gw1", snap["seq"], snap["epoch"], 1.0)
    assert result.stopped
    assert any("stream_stopped" in text for _, text in result.events)
    assert (await actor.submit("gw1", "b2", [chat("late")]))[0] == Result.rejected("the stream has ended")
    journal, checkpoint = await versions(actor)
    stored = await stores.checkpoints.load(sid)
    assert stored is not None and stored["version"] == journal == checkpoint
