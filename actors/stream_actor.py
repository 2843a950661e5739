"""`StreamActor`: the Ray actor that is the single writer of one live stream.

It is a shell around `StreamState`: gateways `submit` batches of commands and
`poll` for published events; the actor applies batches in arrival order,
stores them, then publishes.

Guarantees:

* **Stored before published or acknowledged (group commit).** The commands
  that arrive while a commit is being written wait for the next one. A commit
  is one journal entry (its inputs and the events it produced), at most one
  per `commit_interval`: a command that finds the last commit started at
  least a gap ago is committed at once (on the next turn of the loop), others
  wait for the gap's end and go together; the gap is twice what the last
  commit took, at most `commit_interval` (`core.pacing`). Only once the
  entry is stored are its events published and its commands answered: an
  answer means the effect is durable, an event seen by a gateway is durable.
* **No timer while idle.** The commit loop sleeps until a command arrives or
  timed work comes due: a coalesced update or a flash sale's end, a gateway
  lease that may run out (only while some gateway holds one: it polls or
  submits), a checkpoint of commits not yet in one. A stream nobody uses
  runs nothing of its own.
* **Checkpoint plus journal.** A full checkpoint is written at most every
  `snapshot_interval` (versioned: only a newer one lands), while the commits
  after it go on (one write at a time; stopping and `flush` wait for it). A
  big stream's checkpoints are spaced out so their writes take at most 1/40
  of the time, and never more than 20 s apart (`checkpoint_schedule`). The
  state is the last checkpoint plus the journal entries after it, replayed
  through the pure core; chat messages and viewer records are derived from
  the same entries and stored idempotently, so a crash between two writes
  loses nothing.
* **Loaded before serving.** Every method waits until the checkpoint is loaded
  and the journal replayed. The event log is refilled from the journal, so
  gateways and resuming clients go on from their position without a gap.
  The epoch changes only when no checkpoint exists (state was lost).
* **Prepared ahead, live in memory.** A spare reserved for a scheduled stream
  `prepare`s it (assignment stored, state loaded) and is not live: calls
  wait. It goes live with the stream record's meta (its start time), told
  (`go_live`) or by reading the record when first called; no write. The
  record is the durable part: every load takes the meta from it.
* **Idempotent submits.** A batch id is applied at most once; submitting it
  again (after a timeout or a restart) returns the first answers.
* **Fenced.** If another instance of this actor already wrote a journal
  version, this one stops serving and acknowledges nothing more: its pending
  calls get `Fenced` (the gateway resends them to the newer instance), its
  loops stop, and it ends its own actor so Ray frees its `stream` unit.
* **Never blocks on the database.** Storage is async; while it fails with a
  transient error (`storage_errors.classify`) the actor retries with capped
  backoff, reports itself degraded (`healthy` false in polls, `degraded` in
  `info`), publishes and acknowledges nothing, and refuses commands beyond
  `max_pending_commands` (code `busy`, with `retryAfter`). Its memory is
  always exactly what the pending entry will store.
* **Crash-only commits.** A commit that fails otherwise (a permanent storage
  error such as a document too large, or any unexpected exception while
  applying or storing it) is never retried: each of its commands is answered
  with a refusal of code `internal`, and the actor reloads from its
  checkpoint and journal (the path a restart takes) before serving again, so
  its state is always what it stored.
* **Replay checked.** A recovery whose replayed events differ from the ones
  the journal says were published is logged as an error and loaded again
  from the database (up to `REPLAY_RELOADS` times) before the stream serves.
* **Viewer leases.** A gateway that has neither polled nor submitted for
  `gateway_lease` seconds is taken for dead: its viewers leave the count
  (`gateway_leases`).
* **Viewer samples.** Best effort, for analytics: the most viewers of each
  minute (`viewer_peaks`).

Its stores come in as one `StreamStores`: Ray creates the actor with
`(stream_id, meta, config)` and it connects them to `config.db` itself; tests
give it stores on a database of their own and run it in their event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from pymongo.errors import PyMongoError

from actors.call_policy import Fenced
from actors.checkpoint_schedule import CheckpointSchedule
from actors.config import ActorConfig
from actors.gateway_leases import GatewayLeases
from actors.storage_errors import StorageError, classify
from actors.stream_stores import StreamStores
from actors.viewer_peaks import MinutePeaks
from core.checkpoint import from_checkpoint, to_checkpoint
from core.command_codec import commit_from_entry, commit_to_entry
from core.commands import Chat, Command, ToggleLike
from core.commit import CommitInput, apply_commit, stop_stream
from core.event_log import EventLog
from core.events import ChatRecord
from core.pacing import Pacer
from core.poll import PollResult
from core.results import Result
from core.state import StreamMeta, StreamState
from core.wire import encode_event
from persistence.journal import StaleWriter
from runtime.clock import now_iso
from runtime.gc_policy import freeze_startup
from runtime.logs import debug_enabled

log = structlog.get_logger("actors.stream")
T = TypeVar("T")

RETRY_MIN_S = 0.05
RETRY_MAX_S = 0.5
REPLAY_RELOADS = 3  # a recovery whose replay differs from what was published is loaded again this often
RETRY_AFTER_S = 1  # what a refused command's `retryAfter` says
LEASE_SLACK_S = 0.05  # a lease is checked this long after it may run out (exactly at its end it still holds)
SLOW_CHECKPOINT_S = 0.1  # a checkpoint write that takes longer than this is logged


class InjectedFault(RuntimeError):
    """Raised by the test-only fault hook (`ActorConfig.fault_inject_commit`)."""


class ReplayDiffers(RuntimeError):
    """A recovery replayed the journal into events other than the ones it says were published."""


_BUSY = Result.rejected("the stream cannot store right now; try again shortly", "busy", retryAfter=RETRY_AFTER_S)


@dataclass(slots=True)
class _Pending:
    gateway_id: str
    batch_id: str
    commands: list[Command]
    answer: asyncio.Future[list[Result]]
    arrived: float  # time.monotonic() when it joined the inbox (for the stage timings)


class StreamActor:
    """The single writer of one live stream (its guarantees: see this module)."""

    def __init__(
        self,
        stream_id: str | None,
        meta: dict[str, Any] | None,
        config: ActorConfig,
        stores: StreamStores | None = None,
        *,
        name: str | None = None,
    ) -> None:
        """`stream_id` None makes a spare: started ahead of time, it serves the
        stream it is given by `adopt` (or, after a restart, the one it had adopted).

        Ray creates it with the first three arguments (see `actors.handles`):
        it then sets up its actor process and connects its stores to
        `config.db`, and its `name` is its Ray actor name. Run in a process of
        one's own (tests), pass `stores` and `name` (the slot a spare is
        recorded under), create it inside the running event loop, and `close`
        it when done."""
        if stores is None:
            stores = _set_up_actor_process(config)
        self.stream_id = stream_id or "spare"
        self._stream_given = stream_id
        self.incarnation = secrets.token_hex(4)
        self._meta = meta or {}
        self._config = config
        self._name = name
        self._stores = stores
        self._state: StreamState | None = None
        self._version = 0  # last journal version stored
        self._snapshot_version = 0
        self._saving: asyncio.Task[bool] | None = None  # the checkpoint being written, if any
        self._schedule = CheckpointSchedule(config.snapshot_interval, time.monotonic())
        self._log = EventLog(config.event_log_size)
        self._inbox: list[_Pending] = []
        self._pending_commands = 0  # in the inbox
        self._loading_commands = 0  # in calls waiting for the state to load
        self._wake = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._published = asyncio.Event()
        self._commit_pace = Pacer(config.commit_interval)  # when the last stored commit started, what it took
        self._stopped = False
        self._fenced = False
        self._healthy = True
        self._exiting: asyncio.Task[None] | None = None  # a fenced instance ending itself
        self._leases = GatewayLeases(config.gateway_lease)
        self._peaks = MinutePeaks()
        # Counted where it happens, for `info()` (the benchmark reads these, not what a tester sent):
        self._toggles_applied = 0  # like taps applied and stored
        self._polls_answered: dict[str, int] = {}  # per gateway
        self._events_delivered: dict[str, int] = {}  # per gateway: events handed out in poll answers
        self._load_started = time.monotonic()
        self.load_seconds: float | None = None
        loop = asyncio.get_running_loop()
        self._adoption: asyncio.Future[tuple[str, dict[str, Any], bool]] = loop.create_future()  # stream, meta, live
        self._slot_read: asyncio.Future[None] = loop.create_future()  # a spare has read its stored assignment
        self._prepared: asyncio.Future[None] = loop.create_future()  # state loaded (a prepared stream: not live yet)
        self._live_meta: asyncio.Future[dict[str, Any]] = loop.create_future()  # the meta it serves once live
        self._live_check: asyncio.Task[None] | None = None  # a prepared stream reading whether it went live
        if stream_id:
            self._live_meta.set_result(self._meta)
        self._loaded = loop.create_task(self._load() if stream_id else self._load_when_adopted())
        self._committer = loop.create_task(self._commit_forever())

    # ------------------------------------------------------------ public API

    async def ready(self) -> dict[str, Any]:
        """Wait until loaded; return the snapshot (stream data, recent chat, position)."""
        return await self.snapshot()

    async def warm(self) -> bool:
        """Answers once the process is up: a spare is ready to adopt a stream."""
        return True

    async def adopt(self, stream_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        """Serve `stream_id` now (a spare only): `prepare` and `go_live` in one.
        The assignment is stored first, so a restart of this actor comes back
        serving the same stream. Idempotent."""
        await self._assign(stream_id, meta, live=True)
        return await self.go_live(meta)

    async def prepare(self, stream_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        """Load `stream_id` ahead of its go-live (a spare reserved for a
        scheduled stream): the assignment is stored (as not live yet) and the
        state loaded when this answers; the stream is not live: it announces
        nothing, and every call but `go_live`, `prepare` and `info` waits until
        it goes live, as on a spare. A restart of this actor prepares the same
        stream again (or serves it, if its record went live meanwhile).
        Returns the state's snapshot as loaded (with the meta it was loaded
        with: `go_live` changes only the meta). Idempotent."""
        await self._assign(stream_id, meta, live=False)
        loading = self._loaded
        await asyncio.wait({self._prepared, loading}, return_when=asyncio.FIRST_COMPLETED)
        if not self._prepared.done():
            loading.result()  # its error is the caller's
        assert self._state is not None
        return self._state.snapshot()

    async def go_live(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The prepared stream goes live with `meta` (its record once marked
        live: the start time of the go-live, and any edit since `prepare`),
        an in-memory switch: no database write. The record is what makes it
        durable: a later load of this stream takes its meta from there
        (`SlotStore.assignment`), and its next checkpoint stores it. A
        prepared stream also goes live by itself when it is called after its
        record went live (`_check_live_soon`). Returns the snapshot, as
        `ready`. Idempotent: a live stream answers its snapshot."""
        if self._stream_given is None:
            await self._slot_read
            if not self._adoption.done():
                raise RuntimeError(f"actor {self._slot_name()} has no stream to go live with: prepare or adopt first")
        if not self._live_meta.done():
            self._live_meta.set_result(meta)
        return await self.snapshot()

    async def _assign(self, stream_id: str, meta: dict[str, Any], live: bool) -> None:
        """Store the assignment of this spare to `stream_id` (once) and start loading it."""
        name = self._slot_name()
        if not self._adoption.done():
            await self._retry("assign_slot", lambda: self._stores.slots.assign(name, stream_id, meta, live=live))
            if not self._adoption.done():
                self._adoption.set_result((stream_id, meta, live))
        if self._adoption.result()[0] != stream_id:
            raise RuntimeError(f"actor {name} already serves stream {self._adoption.result()[0]}")

    async def submit(self, gateway_id: str, batch_id: str, commands: list[Command]) -> list[Result]:
        """Apply a batch of commands, in order, once. Returns one `Result` per
        command once the batch's effects are stored. Beyond
        `max_pending_commands` waiting (in the inbox, or for the state to load
        or reload), refused at once with code `busy`."""
        size = _taps(commands)
        if not self._loaded.done():  # loading, or reloading after a failed commit: wait, counted
            if self._full(size):
                return [_BUSY] * len(commands)
            self._loading_commands += size
            try:
                state = await self._ready_state()
            finally:
                self._loading_commands -= size
        else:
            state = await self._ready_state()
        self._leases.renew(gateway_id, time.monotonic())
        if self._stopped:
            return [Result.rejected("the stream has ended")] * len(commands)
        if batch_id in state.applied_batches:
            return state.applied_batches[batch_id]
        if self._full(size):
            return [_BUSY] * len(commands)
        answer: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        self._inbox.append(_Pending(gateway_id, batch_id, list(commands), answer, time.monotonic()))
        self._pending_commands += size
        self._wake.set()
        results = await answer
        self._toggles_applied += _like_taps(commands, results)
        return results

    def _full(self, size: int) -> bool:
        """Whether `size` more commands would exceed `max_pending_commands`."""
        return self._pending_commands + self._loading_commands + size > self._config.max_pending_commands

    async def poll(self, gateway_id: str, after_seq: int, epoch: str | None, timeout: float) -> PollResult:
        """Events after `after_seq` of `epoch`, waiting up to `timeout` seconds
        for some if there are none yet (a long poll)."""
        state = await self._ready_state()
        self._leases.renew(gateway_id, time.monotonic())
        deadline = time.monotonic() + timeout
        while True:
            if epoch != state.epoch or not self._log.covers(after_seq):
                async with self._commit_lock:
                    return PollResult(
                        self.incarnation,
                        state.epoch,
                        snapshot=state.snapshot(),
                        stopped=self._stopped,
                        healthy=self._healthy,
                    )
            events = self._log.since(after_seq)
            remaining = deadline - time.monotonic()
            if events or self._stopped or remaining <= 0:
                self._leases.renew(gateway_id, time.monotonic())
                self._polls_answered[gateway_id] = self._polls_answered.get(gateway_id, 0) + 1
                self._events_delivered[gateway_id] = self._events_delivered.get(gateway_id, 0) + len(events)
                return PollResult(
                    self.incarnation, state.epoch, events=events, stopped=self._stopped, healthy=self._healthy
                )
            published = self._published
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(published.wait(), remaining)
            state = await self._ready_state()  # fenced, or reloaded after a failed commit, meanwhile

    async def events_since(self, after_seq: int, epoch: str) -> list[tuple[int, str]] | None:
        """The published events after `after_seq` of `epoch`, or None if they
        are no longer all held (for a client resuming through a gateway that
        does not hold them)."""
        state = await self._ready_state()
        if epoch != state.epoch or not self._log.covers(after_seq):
            return None
        return self._log.since(after_seq)

    async def snapshot(self) -> dict[str, Any]:
        """The published state: consistent with the events published so far."""
        state = await self._ready_state()
        async with self._commit_lock:
            return {**state.snapshot(), "stopped": self._stopped, "stats": state.stats()}

    async def flush(self) -> None:
        """Store and publish whatever is pending now, and write a checkpoint."""
        await self._ready_state()
        async with self._commit_lock:
            await self._commit_once()
            await self._snapshot()

    async def stop(self) -> dict[str, Any]:
        """End the stream: apply what is pending, publish `stream_stopped`, store
        the final state. Returns the final numbers. Idempotent."""
        state = await self._ready_state()
        async with self._commit_lock:
            if not self._stopped:
                await self._commit_once()
                stop_stream(state)
                await self._commit_once(force=True)
                await self._snapshot()
                self._stopped = True
                self._wake_pollers()
                log.info("stream_stopped", stream_id=self.stream_id, **_loggable(state.stats()))
        return state.stats()

    async def info(self) -> dict[str, Any]:
        """Process and health facts, for operators and tests."""
        import ray

        state = self._state
        return {
            "streamId": self.stream_id,
            "pid": os.getpid(),
            "cpuSeconds": time.process_time(),  # this actor process's CPU time so far
            "nodeId": ray.get_runtime_context().get_node_id() if ray.is_initialized() else None,
            "incarnation": self.incarnation,
            "loaded": self._loaded.done() and self._state is not None,
            "loadSeconds": self.load_seconds,
            "healthy": self._healthy and not self._fenced,
            "degraded": not self._healthy,  # storage failing transiently: retried, nothing published meanwhile
            "fenced": self._fenced,
            "stopped": self._stopped,
            "seq": state.seq if state else None,
            "epoch": state.epoch if state else None,
            "version": self._version,
            "snapshotVersion": self._snapshot_version,
            "pendingCommands": self._pending_commands + self._loading_commands,
            "gateways": self._leases.holders(),
            "togglesApplied": self._toggles_applied,  # like taps applied and stored since this process started
            "pollsAnswered": dict(self._polls_answered),  # per gateway, with events or at the poll's timeout
            "eventsDelivered": dict(self._events_delivered),  # per gateway, events in those answers
        }

    async def close(self) -> None:
        """Stop this object's background work and store nothing more: what the
        death of its process does to a Ray actor, without the process (for
        in-process use and tests; a Ray actor is never closed, it dies). The
        pending commands are not answered; a new instance recovers from what
        was stored."""
        tasks = [t for t in (self._committer, self._loaded, self._saving, self._live_check) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ loading

    async def _ready_state(self) -> StreamState:
        if self._adoption.done() and not self._live_meta.done():  # prepared: called once live, or by mistake
            self._check_live_soon()
        try:
            await asyncio.shield(self._loaded)
        except BaseException:
            if self._fenced and self._loaded.done():  # fenced while loading (its load ended by the fence)
                raise Fenced(f"stream {self.stream_id}: a newer instance of this actor took over") from None
            raise
        if self._fenced:
            raise Fenced(f"stream {self.stream_id}: a newer instance of this actor took over")
        assert self._state is not None
        return self._state

    def _check_live_soon(self) -> None:
        """A prepared stream is called (a gateway follows its announcement, the
        registry stops it): read whether its record went live, and with which
        meta; if so it goes live now (the registry does not have to tell it).
        One read at a time; a call finding it still not live waits, as on a spare."""
        if self._live_check is not None and not self._live_check.done():
            return

        async def check() -> None:
            meta = await self._retry("read_live", lambda: self._stores.slots.live_meta(self.stream_id))
            if meta is not None and not self._live_meta.done():
                self._live_meta.set_result(meta)
                log.info("stream_live_from_record", stream_id=self.stream_id, start_time=meta.get("startTime"))

        self._live_check = asyncio.get_running_loop().create_task(check())

    async def _load_when_adopted(self) -> None:
        """A spare: wait for a stream, unless a previous life of this actor had
        one (then prepared again, or live if its record says so)."""
        name = self._slot_name()
        try:
            assigned = await self._retry("read_slot", lambda: self._stores.slots.assignment(name))
        finally:
            self._slot_read.set_result(None)
        if assigned is not None and not self._adoption.done():
            self._adoption.set_result(assigned)
        self.stream_id, self._meta, live = await self._adoption
        if live and not self._live_meta.done():
            self._live_meta.set_result(self._meta)
        self._load_started = time.monotonic()
        await self._load()

    async def _load(self) -> None:
        for attempt in itertools.count(1):
            doc = await self._retry("load_checkpoint", lambda: self._stores.checkpoints.load(self.stream_id))
            if doc is None:
                await self._create()
                break
            try:
                await self._recover(doc, check=attempt <= REPLAY_RELOADS)
                break
            except ReplayDiffers as e:
                # What clients were shown is not what the journal replays into: serve neither
                # until the checkpoint and journal, read again, agree with it.
                log.error("journal_replay_differs", stream_id=self.stream_id, version=str(e), attempt=attempt)
                await asyncio.sleep(min(RETRY_MIN_S * 2**attempt, RETRY_MAX_S))
        self.load_seconds = time.monotonic() - self._load_started
        if not self._prepared.done():
            self._prepared.set_result(None)
        self._meta = await self._live_meta  # a stream prepared ahead waits here until it goes live
        self._serve_meta(self._meta)
        now = time.monotonic()
        assert self._state is not None
        for gateway_id in self._state.gateways():
            self._leases.grant(gateway_id, now)
        self._schedule.taken(now)  # just loaded from (or written as) a checkpoint
        log.info(
            "stream_loaded",
            stream_id=self.stream_id,
            seq=self._state.seq,
            epoch=self._state.epoch,
            version=self._version,
            incarnation=self.incarnation,
            seconds=round(self.load_seconds, 3),
            log_from=self._log.first_seq,
        )

    def _serve_meta(self, meta: dict[str, Any]) -> None:
        """Serve `meta` (the stream record's) rather than the loaded one: a
        stream prepared before its go-live loaded the meta it had then (no
        start time, maybe an older title). In memory: nothing is published
        (nobody watches yet), and the next checkpoint stores it."""
        state = self._state
        assert state is not None
        if not meta or state.meta == (wanted := StreamMeta.from_doc(meta)):
            return
        doc = {**to_checkpoint(state), "meta": wanted.to_doc()}
        cfg = self._config
        self._state = from_checkpoint(
            doc, list(state.recent_chat), history_size=cfg.history_size, update_interval=cfg.update_interval
        )

    async def _create(self) -> None:
        """No checkpoint: a new stream, or one whose state was lost (new epoch)."""
        cfg = self._config
        recent = await self._retry("load_chat", lambda: self._stores.chat.recent(self.stream_id, 1))
        last_seq = int(recent[-1]["seq"]) if recent else 0
        self._state = StreamState(
            meta=StreamMeta.from_doc(self._meta),
            seq=last_seq,
            history_size=cfg.history_size,
            update_interval=cfg.update_interval,
        )
        if last_seq:
            log.warning("stream_state_lost_new_epoch", stream_id=self.stream_id, epoch=self._state.epoch)
        self._log = EventLog(cfg.event_log_size, last_seq=last_seq)
        await self._snapshot()

    async def _recover(self, doc: dict[str, Any], check: bool = True) -> None:
        """Checkpoint, then the journal after it, replayed through the core.
        Raises `ReplayDiffers` (nothing loaded) if `check` and the replay's
        events are not the ones each entry says were published; without
        `check` (the last attempt) that is only logged."""
        cfg = self._config
        base = int(doc.get("version", 0))
        recent = await self._retry(
            "load_chat", lambda: self._stores.chat.recent(self.stream_id, cfg.history_size, up_to_seq=int(doc["seq"]))
        )
        state = from_checkpoint(
            doc,
            [ChatRecord.from_doc(m) for m in recent],
            history_size=cfg.history_size,
            update_interval=cfg.update_interval,
        )
        entries = await self._retry("load_journal", lambda: self._stores.journal.after(self.stream_id, base))
        for entry in entries:
            _, events = apply_commit(state, commit_from_entry(entry))
            replayed = [[e.seq, encode_event(self.stream_id, state.epoch, e)] for e in events]
            if replayed != [list(e) for e in entry.get("events", [])]:
                if check:
                    raise ReplayDiffers(entry["version"])
                log.error("journal_replay_still_differs", stream_id=self.stream_id, version=entry["version"])
        self._state = state
        self._version = int(entries[-1]["version"]) if entries else base
        self._snapshot_version = base
        # Whatever the replay derived may not have been stored before the crash: store it (idempotent).
        await self._store_derived(state.take_new_chat(), state.take_new_viewers())
        await self._refill_log()

    async def _refill_log(self) -> None:
        """The event log from the journal's recent entries, up to the current version."""
        cfg = self._config
        assert self._state is not None
        entries = await self._retry("load_log", lambda: self._stores.journal.tail(self.stream_id, self._version, 4096))
        events = [(int(seq), text) for e in entries if e.get("epoch") == self._state.epoch for seq, text in e["events"]]
        # Keep the contiguous run that ends at the current position.
        run: list[tuple[int, str]] = []
        expected = self._state.seq
        for seq, text in reversed(events):
            if seq != expected:
                break
            run.append((seq, text))
            expected -= 1
        run.reverse()
        self._log = EventLog(cfg.event_log_size, last_seq=(run[0][0] - 1) if run else self._state.seq)
        for seq, text in run:
            self._log.append(seq, text)

    # ------------------------------------------------------------ committing

    async def _commit_forever(self) -> None:
        try:
            await self._loaded
        except Exception:
            log.exception("stream_load_failed", stream_id=self.stream_id)
            return
        while not self._stopped and not self._fenced:
            due = self._next_due()
            if not self._inbox and (due is None or due > 0.0):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due)  # None: no timer, only a command wakes it
            self._wake.clear()
            wait = self._commit_pace.delay(time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)  # busy: the commands of this interval go together
            async with self._commit_lock:
                if self._stopped:
                    break
                try:
                    await self._commit_once()
                    self._snapshot_soon()
                except Fenced:
                    break
                except Exception:  # noqa: BLE001 - answered and reloaded by _commit_once; the loop goes on
                    loaded = self._loaded
                    if loaded.done() and not loaded.cancelled() and loaded.exception() is not None:
                        # Every call now raises the load's error (bounded: no call waits on it).
                        log.error("stream_reload_failed", stream_id=self.stream_id, error=repr(loaded.exception()))
                        break

    def _next_due(self) -> float | None:
        """Seconds until the commit loop has timed work (0: now), None if it has
        none: a coalesced update or a flash sale's end, a gateway lease that may
        run out, a checkpoint due for commits not yet in one (unless one is
        being written: its end wakes the loop)."""
        state = self._state
        assert state is not None
        dues = [state.update_due_in(time.time())]
        sale_end = state.next_sale_end()
        if sale_end is not None:
            dues.append(max(0.0, (datetime.fromisoformat(sale_end) - datetime.now(UTC)).total_seconds()))
        now = time.monotonic()
        expiry = self._leases.next_expiry()
        if expiry is not None:
            dues.append(max(0.0, expiry - now) + LEASE_SLACK_S)
        if self._version != self._snapshot_version and (self._saving is None or self._saving.done()):
            dues.append(self._schedule.due_in(now))
        return min((d for d in dues if d is not None), default=None)

    async def _commit_once(self, force: bool = False) -> None:
        """Apply the inbox, store the journal entry, publish, answer. Caller holds the commit lock.

        Crash-only: if that fails other than by fencing (a permanent storage
        error, a bug), every command of the commit is answered with a refusal
        (code `internal`), the state is reloaded from the checkpoint and
        journal, and the error is raised again."""
        pending, self._inbox = self._inbox, []
        self._pending_commands = 0
        try:
            await self._apply_and_store(pending, force)
        except Fenced:
            raise
        except Exception as e:
            log.exception("commit_failed", stream_id=self.stream_id, version=self._version + 1, commands=len(pending))
            failed = Result.rejected("the stream could not store this; try again", "internal", retryAfter=RETRY_AFTER_S)
            for p in pending:
                if not p.answer.done():
                    p.answer.set_result([failed] * len(p.commands))
            await self._reload()
            raise e

    async def _reload(self) -> None:
        """Load again from the checkpoint and journal, as a restart would; calls wait for it."""
        self._load_started = time.monotonic()
        self._loaded = asyncio.get_running_loop().create_task(self._load())
        await asyncio.shield(self._loaded)

    async def _apply_and_store(self, pending: list[_Pending], force: bool) -> None:
        state = self._state
        assert state is not None
        started = time.monotonic()
        now = datetime.now(UTC)
        commit = CommitInput(
            batches=[(p.gateway_id, p.batch_id, p.commands) for p in pending],
            now=now,
            clock=now.timestamp(),
            expired_gateways=self._expired_gateways(),
        )
        results, events = apply_commit(state, commit)
        self._inject_fault(pending)
        if not (pending or events or commit.expired_gateways or force):
            return
        encoded = [(e.seq, encode_event(self.stream_id, state.epoch, e)) for e in events]
        version = self._version + 1
        entry = commit_to_entry(commit, state.epoch, encoded)
        applied = time.monotonic()
        try:
            await self._retry(
                "append_journal", lambda: self._stores.journal.append(self.stream_id, version, self.incarnation, entry)
            )
        except StaleWriter:
            self._fence(pending)
            raise Fenced(self.stream_id) from None
        self._version = version
        stored = time.monotonic()
        self._commit_pace.ran(started, stored - started)
        if debug_enabled(log):  # stage timings (`LOG_LEVEL=debug`): where a quiet message's milliseconds go
            log.debug(
                "commit_stages",
                stream_id=self.stream_id,
                version=version,
                commands=sum(len(p.commands) for p in pending),
                last_seq=encoded[-1][0] if encoded else None,
                queued_ms=round(1000 * (started - min(p.arrived for p in pending)), 3) if pending else None,
                apply_ms=round(1000 * (applied - started), 3),
                journal_ms=round(1000 * (stored - applied), 3),
                published_at=time.time(),
            )
        for seq, text in encoded:
            self._log.append(seq, text)
        if encoded:
            self._wake_pollers()
        for p, answer in zip(pending, results, strict=True):
            if not p.answer.done():
                p.answer.set_result(answer)
        if commit.expired_gateways:
            log.info("gateway_lease_expired", stream_id=self.stream_id, gateways=commit.expired_gateways)
        await self._store_derived(state.take_new_chat(), state.take_new_viewers())
        await self._record_sample()

    async def _store_derived(self, chat: list[ChatRecord], viewers: list[str]) -> None:
        """Chat messages and viewer records: derived from journal entries, so
        storing them again after a crash is harmless (idempotent ids)."""
        assert self._state is not None
        if chat:
            docs = [c.to_doc() for c in chat]
            epoch = self._state.epoch
            await self._retry("store_chat", lambda: self._stores.chat.insert(self.stream_id, epoch, docs))
        if viewers:
            at = now_iso()
            await self._retry(
                "store_viewers", lambda: self._stores.audience.record_viewers(self.stream_id, viewers, at)
            )
        deleted = self._state.take_new_deletions()  # after the chat above: a message may go in one commit
        if deleted:
            epoch, at = self._state.epoch, now_iso()
            await self._retry(
                "mark_deleted", lambda: self._stores.chat.mark_deleted(self.stream_id, epoch, deleted, at)
            )

    def _snapshot_soon(self) -> None:
        """Start a due checkpoint without holding up the commits after it.
        Caller holds the commit lock: the document is built now, consistent
        with the journal version just stored; it is written while later
        commits go on (at 10,000 viewers the write took 0.1-0.3 s, and every
        event of that time waited for it). One at a time."""
        assert self._state is not None
        if self._saving is not None and not self._saving.done():
            return
        if not self._schedule.due(time.monotonic()) or self._version == self._snapshot_version:
            return
        version, doc = self._take_checkpoint()
        self._saving = asyncio.get_running_loop().create_task(self._save_checkpoint(version, doc, background=True))
        self._saving.add_done_callback(self._after_checkpoint)

    def _after_checkpoint(self, _: asyncio.Task[bool]) -> None:
        """A background checkpoint ended: if commits came meanwhile, the commit
        loop arms the next one (while it was written, none was armed)."""
        if self._version != self._snapshot_version:
            self._wake.set()

    async def _snapshot(self) -> None:
        """A full checkpoint now (after any being written), then prune the journal.
        Caller holds the commit lock. Raises `Fenced` if a newer instance took over."""
        assert self._state is not None
        if self._saving is not None:
            await self._saving
        version, doc = self._take_checkpoint()
        if not await self._save_checkpoint(version, doc, background=False):
            raise Fenced(self.stream_id)

    def _take_checkpoint(self) -> tuple[int, dict[str, Any]]:
        """The state as of the last stored journal version, as a checkpoint
        document (its version with it); the next one is due a gap from now."""
        assert self._state is not None
        self._schedule.taken(time.monotonic())
        return self._version, {**to_checkpoint(self._state), "savedAt": now_iso(), "writer": self.incarnation}

    async def _save_checkpoint(self, version: int, doc: dict[str, Any], background: bool) -> bool:
        """Store a checkpoint (retrying while the database fails); False, and
        fenced, if a newer instance of this actor has written a newer one."""
        started = time.perf_counter()
        try:
            stored = await self._retry(
                "save_checkpoint", lambda: self._stores.checkpoints.save(self.stream_id, version, doc)
            )
        except StaleWriter:
            if not background:
                raise
            stored = False
        except Exception:
            if not background:
                raise
            log.exception("checkpoint_failed", stream_id=self.stream_id, version=version)
            return False
        took = time.perf_counter() - started
        self._schedule.written(took)
        if took > SLOW_CHECKPOINT_S:
            log.info(
                "checkpoint_slow",
                stream_id=self.stream_id,
                version=version,
                ms=round(1000 * took),
                background=background,
                next_in_s=round(self._schedule.gap, 1),
            )
        if not stored:
            self._fence([])
            self._wake.set()  # the commit loop sees the fence and stops
            return False
        self._snapshot_version = max(self._snapshot_version, version)
        keep_from = version - 4096  # enough entries to refill the event log after a restart
        if keep_from > 0 and version % 64 == 0:
            try:
                await self._stores.journal.prune(self.stream_id, keep_from)
            except PyMongoError as e:  # pruning is housekeeping: the next checkpoint tries again
                log.warning("journal_prune_failed", stream_id=self.stream_id, error=repr(e))
        return True

    async def _record_sample(self) -> None:
        """Best effort, for analytics: the most viewers seen in each minute."""
        assert self._state is not None
        minute, count = now_iso()[:16], self._state.viewer_count
        if not self._peaks.offer(minute, count):
            return
        try:
            await self._stores.audience.record_sample(self.stream_id, minute, count)
        except PyMongoError as e:  # a lost sample costs one point of a chart, never the stream
            log.warning("viewer_sample_not_stored", stream_id=self.stream_id, error=repr(e))

    def _expired_gateways(self) -> list[str]:
        """The gateways whose lease expired and through which someone watches."""
        gone = self._leases.expire(time.monotonic())
        assert self._state is not None
        known = self._state.gateways()
        return [g for g in gone if g in known]

    def _slot_name(self) -> str:
        """The name this actor's slot is recorded under: given, or its Ray actor name."""
        if self._name is None:
            import ray

            self._name = ray.get_runtime_context().get_actor_name()
        assert self._name is not None
        return self._name

    def _fence(self, pending: list[_Pending]) -> None:
        """A newer instance took over: answer every waiting call with `Fenced`
        (the gateway sends those commands to the newer one), wake the long
        polls (they raise `Fenced` too), and end this instance."""
        if self._fenced:
            return
        self._fenced = True
        log.error("stream_fenced", stream_id=self.stream_id, incarnation=self.incarnation, version=self._version)
        waiting, self._inbox = pending + self._inbox, []
        self._pending_commands = 0
        for p in waiting:
            if not p.answer.done():
                p.answer.set_exception(Fenced(f"stream {self.stream_id}: a newer instance of this actor took over"))
        self._wake_pollers()
        self._wake.set()  # the commit loop sees the fence and stops
        self._exiting = asyncio.get_running_loop().create_task(self._exit_fenced())

    async def _exit_fenced(self) -> None:
        """Stop this instance's loops and, in Ray, end its actor: Ray frees
        its `stream` unit. `exit_actor` marks the actor to exit once the
        methods running now have answered (an intentional exit: Ray does not
        restart it, and the newer instance is another process)."""
        await asyncio.sleep(0)  # let the answers above go out first
        await self.close()
        import ray

        if not ray.is_initialized():
            return
        try:
            ray.actor.exit_actor()
        except TypeError:  # not an actor's process: this object runs in a driver (tests), closed above
            return
        except BaseException as e:  # noqa: BLE001 - exit_actor raises to end the calling task; the actor exits after the running calls
            log.info("stream_fenced_exiting", stream_id=self.stream_id, how=type(e).__name__)

    def _inject_fault(self, pending: list[_Pending]) -> None:
        """The test-only fault hook (`ActorConfig.fault_inject_commit`, None in production)."""
        marker = self._config.fault_inject_commit
        if marker is None:
            return
        for p in pending:
            for c in p.commands:
                if isinstance(c, Chat) and marker in c.message:
                    raise InjectedFault(f"fault injected into a commit of stream {self.stream_id} (test hook)")

    async def _retry(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        delay = RETRY_MIN_S
        attempt = 0
        while True:
            try:
                result = await op()
                if not self._healthy:
                    log.info("storage_recovered", stream_id=self.stream_id, op=what, attempts=attempt + 1)
                self._healthy = True
                return result
            except Exception as e:
                if classify(e) is not StorageError.TRANSIENT:
                    # Fenced, or permanent: trying again would fail the same way. The database answered.
                    self._healthy = True
                    raise
                attempt += 1
                self._healthy = False
                log.warning(
                    "storage_retry",
                    stream_id=self.stream_id,
                    op=what,
                    attempt=attempt,
                    error=f"{type(e).__name__}: {e}",
                    next_in_s=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _wake_pollers(self) -> None:
        published, self._published = self._published, asyncio.Event()
        published.set()


def _set_up_actor_process(config: ActorConfig) -> StreamStores:
    """In a Ray actor process of its own: logs in the configured format and level,
    the start-up objects frozen, the stores connected to `config.db`."""
    from runtime.logs import configure

    configure(config.log_level, config.log_format)
    freeze_startup(collect=False)  # Ray's and our modules out of the collector's reach: shorter pauses
    return StreamStores.connect(config.db)


def _taps(commands: list[Command]) -> int:
    """How many commands a batch holds, a run of like taps (`ToggleLike.more`) counting each tap."""
    return sum(1 + len(c.more) if c.__class__ is ToggleLike else 1 for c in commands)


def _like_taps(commands: list[Command], results: list[Result]) -> int:
    """How many like taps of a batch were applied: each accepted `ToggleLike` with its run of taps."""
    return sum(1 + len(c.more) for c, r in zip(commands, results, strict=True) if c.__class__ is ToggleLike and r.ok)


def _loggable(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if k != "pinnedProducts"}
