"""`StreamRegistry`: the cluster's directory of live streams.

One named, detached actor. It is the single writer of which streams are live:
starting and stopping go through it, one at a time per stream, so two admins
(or two gateways) racing cannot start a stream twice or stop it half-way.
Gateways learn changes by long-polling `poll` with the version they have
(versioned snapshots, as Ray Serve's long poll), never by asking per request.

What survives a crash: the stream records in the database are the truth. A
restarted registry reads the streams marked live and brings their actors up
(each recovers from its own checkpoint); its version restarts, and its new
`incarnation` tells gateways to take the whole live set afresh.

Every method is idempotent: starting a live stream returns it as it is,
stopping an ended one says so; starting a stream that is going live already
joins that go-live.

Going live is bounded: a go-live that cannot bring its actor up within
`go_live_timeout` while no node has a free `stream` unit (so the actor's
creation waits) is undone: the actor it was bringing up is ended, the stream
is scheduled again, and the answer says there is no stream capacity (code
`no_capacity`). With units free, the process is only slow to start on a busy
node: the go-live waits up to `SLOW_START_ROUNDS` more timeouts. A caller
that cannot wait that long (REST, under its request deadline) passes `wait_s`
and gets `pending` meanwhile; the go-live goes on.

Scheduled streams are prewarmed: a stream with `scheduledAt` gets a spare
reserved for it `prewarm_seconds` ahead (`core.prewarm_plan`), which prepares
the stream at once (its assignment stored, its state loaded) without going
live: it announces nothing and serves no viewer. Going live is then the
durable live mark (the stream's record: live, with the go-live's start time;
shared by the go-lives arriving together, `LiveMarks`) and the announcement,
made from the snapshot the actor answered `prepare` with and the record's meta
(`announced`): no call to the actor, which costs the registry a millisecond of
CPU each, a hundred of them at once. The actor switches in memory when first
called (a gateway following the announcement): it reads its record, live, and
takes its meta (the start time). When the go-live answers, the record is what
is durable; the actor takes its meta from there on any load. The registry finds due streams by a scan of the stored
records, run when told that a schedule changed (`schedule_changed`), when the
next stream enters its window, and at least every `SCAN_S`; a cancelled or
moved stream's reserved actor is ended (and its assignment released) by the
next scan. After a restart, the prepared actors are found by their stored
assignments and reserved again (the first scan ends those no longer due), so
none is left half-adopted.

The live set and the answer to a start carry each live stream's actor
handle: gateways call stream actors through it. Stream actors are created
through `stream_lifecycle` and called through `StreamClient`, by the same
policy as every other caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import ray
import structlog
from pymongo.errors import PyMongoError

from actors import stream_lifecycle
from actors.call_policy import LoggedCalls
from actors.config import ActorConfig
from actors.placement import stream_actor_name
from actors.stream_client import StreamClient
from core.live_set import LiveSet, RegistryAnswer, stream_meta
from core.prewarm_plan import PrewarmPlan, parse_time
from core.spare_plan import SparePlan
from core.state import StreamMeta
from persistence.database import connect, ensure_indexes
from persistence.flash_sales import FlashSaleStore
from persistence.slots import SlotStore
from persistence.streams import ENDED, LIVE, SCHEDULED, StreamStore, is_stream_id
from runtime.clock import iso, now, now_iso
from runtime.logs import configure, debug_enabled

log = structlog.get_logger("actors.registry")

SLOW_START_ROUNDS = 2  # a go-live waiting with `stream` units free (processes starting slowly) waits 3 timeouts at most
SCAN_S = 30.0  # scheduled streams are looked for at least this often (a change made behind the registry's back)
NO_CAPACITY = (
    "no node of the cluster has free `stream` capacity: the stream could not go live within {timeout:g} s and "
    "is still scheduled. Add stream nodes (`ray start --resources '{{\"stream\": 100}}'`), or wait for the "
    "autoscaler to add them, then start it again"
)
PENDING = (
    "the stream is still going live after {waited:g} s: it waits for a stream actor (most often, no node has "
    "free `stream` capacity; add stream nodes, or the autoscaler is adding them). The go-live goes on for up to "
    "{left:g} s more: start it again to wait for it (idempotent), or watch the stream's isLive"
)


class SparePool:
    """Spare stream actors, started ahead so that going live adopts one.

    `take` hands out a ready spare, or else the next one to finish starting:
    spares start `parallel` at a time, so in a burst of go-lives each waits for
    the next process to come up, not for a whole process start of its own.
    `replenish` starts spares until those ready and starting cover the plan's
    target and every go-live waiting; once go-lives stop for the plan's idle
    time, spares beyond its minimum are ended. `start` makes one spare and
    returns it once it answers; `kill` ends one for good.
    """

    WAIT_S = 30.0  # a go-live waits this long for a spare before the caller starts its own actor

    def __init__(
        self, plan: SparePlan, start: Callable[[], Awaitable[Any]], kill: Callable[[Any], None], parallel: int = 2
    ) -> None:
        self.plan = plan
        self.spares: list[Any] = []  # ready to adopt a stream
        self.starting = 0
        self._start, self._kill, self._parallel = start, kill, max(1, parallel)
        self._waiters: deque[asyncio.Future[Any]] = deque()  # go-lives waiting for the next spare
        self._tasks: set[asyncio.Task[None]] = set()
        self._trimming: asyncio.Task[None] | None = None

    def add(self, spare: Any) -> None:
        """A spare that exists already (found after a restart of the registry)."""
        self.spares.append(spare)

    def claim(self) -> Any:
        """A ready spare beyond the pool's minimum, for another use (a scheduled
        stream's reservation), or None. Not a go-live: the plan is not told."""
        if len(self.spares) <= self.plan.minimum:
            return None
        return self.spares.pop()

    async def take(self, wait_s: float | None = None) -> Any:
        """A spare for a stream going live; None when the pool is off (maximum
        0) or no spare came within `wait_s` (`WAIT_S` if None)."""
        wait_s = self.WAIT_S if wait_s is None else wait_s
        if self.plan.maximum == 0:
            return None
        self.plan.went_live(time.monotonic())
        if self.spares:
            spare = self.spares.pop(0)
            self.replenish()
            return spare
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.replenish()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), wait_s)
        except TimeoutError:
            if waiter.done():
                return waiter.result()
            waiter.cancel()
            log.warning("spare_wait_timed_out", waited_s=wait_s)
            return None
        except asyncio.CancelledError:  # the caller went away: a spare handed over meanwhile goes back
            if waiter.done() and not waiter.cancelled():
                self.spares.append(waiter.result())
            waiter.cancel()
            raise

    def replenish(self) -> None:
        """Start spares (at most `parallel` at a time) until those ready and
        starting cover the target and every go-live waiting."""
        self._waiters = deque(w for w in self._waiters if not w.done())
        wanted = self.plan.target(time.monotonic()) + len(self._waiters)
        while len(self.spares) + self.starting < wanted and self.starting < self._parallel:
            self.starting += 1
            task = asyncio.get_running_loop().create_task(self._start_one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if len(self.spares) > self.plan.minimum and (self._trimming is None or self._trimming.done()):
            self._trimming = asyncio.get_running_loop().create_task(self._trim_when_idle())

    async def _start_one(self) -> None:
        began = time.monotonic()
        try:
            spare = await self._start()
        except Exception as e:  # noqa: BLE001 - any failure to start a spare (Ray, its load) is logged; the pool goes on
            log.warning("spare_actor_failed", error=repr(e))
            await asyncio.sleep(1.0)
            self.starting -= 1
            self.replenish()
            return
        self.starting -= 1
        self.plan.spare_started(time.monotonic() - began)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(spare)
                break
        else:
            self.spares.append(spare)
        self.replenish()

    async def _trim_when_idle(self) -> None:
        """Once go-lives stop for the plan's idle time, end the spares beyond its minimum."""
        plan = self.plan
        while len(self.spares) > plan.minimum:
            wait = (plan.last_start if plan.last_start is not None else -plan.idle_s) + plan.idle_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait + 0.01)
                continue
            for _ in range(len(self.spares) - plan.target(time.monotonic())):
                spare = self.spares.pop()
                try:
                    self._kill(spare)
                except Exception as e:  # noqa: BLE001 - a spare that will not end is logged; the trim goes on
                    log.warning("spare_kill_failed", error=repr(e))
            log.info("spare_pool_trimmed", spares=len(self.spares))
            return


class LiveMarks:
    """Durable live marks, group-committed: the go-lives waiting when a write
    starts share it (one `update_many` and one read, `StreamStore.mark_live_many`),
    and those arriving during it share the next one. A burst of go-lives
    through one embedded database (writes one at a time) costs two round trips
    per group instead of a write each.

    `mark` answers once the write that carried the stream is stored: the
    stream's record after it (None if there is none) and the start time that
    write marked streams live at (each write has its own: a record live with
    another start time was live before). Ordered: one write at a time."""

    def __init__(self, streams: StreamStore) -> None:
        self._streams = streams
        self._waiting: dict[str, asyncio.Future[tuple[dict[str, Any] | None, str, int]]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._last_time = ""

    async def mark(self, stream_id: str) -> tuple[dict[str, Any] | None, str, int]:
        """(the record after the write, the write's start time, how many streams the write carried)."""
        waiting = self._waiting.get(stream_id)
        if waiting is None:
            waiting = self._waiting[stream_id] = asyncio.get_running_loop().create_future()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_all())
        return await asyncio.shield(waiting)

    async def _write_all(self) -> None:
        await asyncio.sleep(0)  # the go-lives started in this turn of the loop go in the first write
        while self._waiting:
            group, self._waiting = self._waiting, {}
            start_time = self._distinct_time()
            try:
                records = await self._streams.mark_live_many(list(group), start_time)
            except Exception as e:  # noqa: BLE001 - the database's error is each go-live's, as a write of its own would be
                for waiting in group.values():
                    if not waiting.done():
                        waiting.set_exception(e)
                continue
            for stream_id, waiting in group.items():
                if not waiting.done():
                    waiting.set_result((records.get(stream_id), start_time, len(group)))

    def _distinct_time(self) -> str:
        """Now, as `runtime.clock` stores it (milliseconds); a millisecond after
        the previous write's if that is not earlier (two writes in one millisecond)."""
        moment = now_iso()
        last = parse_time(self._last_time)
        if last is not None and moment <= self._last_time:
            moment = iso(last + timedelta(milliseconds=1))
        self._last_time = moment
        return moment


_CALLS = LoggedCalls()  # the registry's calls to stream actors: failures are logged


def _start_spare(config: ActorConfig) -> Callable[[], Awaitable[StreamClient]]:
    async def start() -> StreamClient:
        spare = StreamClient(stream_lifecycle.create_spare_actor(config), None, _CALLS)
        await spare.warm()
        return spare

    return start


def _kill_spare(spare: StreamClient) -> None:
    stream_lifecycle.kill(spare.handle)


def announced(prepared: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The snapshot a prepared actor serves once live with `meta`: the one it
    answered `prepare` with, its meta replaced (nothing else changes between
    the two: a stream that is not live takes no command)."""
    shown = StreamMeta.from_doc(meta).to_doc()
    return {**prepared, "streamData": {**prepared["streamData"], **shown}}


class StreamRegistry:
    def __init__(self, config: ActorConfig) -> None:
        configure(config.log_level, config.log_format)
        self._config = config
        self._db = connect(config.db)
        self._streams = StreamStore(self._db)
        self._flash_sales = FlashSaleStore(self._db)
        self._slots = SlotStore(self._db)
        self._marks = LiveMarks(self._streams)
        self.incarnation = secrets.token_hex(4)
        self._version = 0
        self._live: dict[str, dict[str, Any]] = {}
        self._actors: dict[str, StreamClient] = {}  # stream id -> the actor serving it
        self._pool = SparePool(
            SparePlan(config.spare_actors, config.spare_actors_max, config.spare_idle_seconds),
            _start_spare(config),
            _kill_spare,
            config.spare_starts_parallel,
        )
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._changed = asyncio.Event()
        self._going_live: dict[str, tuple[float, asyncio.Task[RegistryAnswer]]] = {}  # stream id -> (began, go-live)
        self._prewarm = PrewarmPlan(config.prewarm_seconds)
        self._wanted: set[str] = set()  # scheduled streams due a reserved actor (the last scan's answer)
        self._prewarmed: dict[str, StreamClient] = {}  # stream id -> the spare reserved (and prepared) for it
        self._prepared: dict[str, dict[str, Any]] = {}  # stream id -> its reserved actor's snapshot, as prepared
        self._prewarming: dict[str, asyncio.Task[None]] = {}  # stream id -> its reserved spare starting
        self._prewarm_starts = asyncio.Semaphore(max(1, config.spare_starts_parallel))
        self._rescan = asyncio.Event()
        self._scanner: asyncio.Task[None] | None = None
        self._loaded = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        delay = 0.1
        live_ids: list[str]
        while True:
            try:
                await ensure_indexes(self._db)
                live_ids = await self._streams.live_ids()
                break
            except PyMongoError as e:
                log.warning("registry_db_unavailable", error=str(e), next_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        await self._adopt_orphans()
        results = await asyncio.gather(*(self._recover(i) for i in live_ids), return_exceptions=True)
        for stream_id, r in zip(live_ids, results, strict=True):
            if isinstance(r, BaseException):
                log.error("stream_recovery_failed", stream_id=stream_id, error=repr(r))
        self._pool.replenish()
        self._scanner = asyncio.get_running_loop().create_task(self._scan_forever())
        log.info("registry_ready", incarnation=self.incarnation, live=len(self._live), spares=len(self._pool.spares))

    async def _adopt_orphans(self) -> None:
        """After a restart of the registry, the pooled actors its previous life
        started: one that never adopted a stream is a spare again; one prepared
        for a stream that is not live is reserved for it again (the first scan
        ends it, its assignment released, if the stream no longer wants it);
        one serving a live stream is found by `_recover`. So none is left
        half-adopted."""
        for name in await asyncio.to_thread(stream_lifecycle.spare_names):
            assigned = await self._slots.assignment(name)
            handle = stream_lifecycle.find_actor(name)
            if handle is None:
                continue
            if assigned is None:
                self._pool.add(StreamClient(handle, None, _CALLS))
            elif not assigned.live:
                actor = StreamClient(handle, assigned.stream_id, _CALLS)
                if assigned.stream_id in self._prewarmed:  # two prepared for one stream: one is enough
                    await self._end_unfinished(assigned.stream_id, actor, slot=name)
                else:
                    self._prewarmed[assigned.stream_id] = actor
                    log.info("stream_prewarm_found", stream_id=assigned.stream_id, slot=name)

    async def _recover(self, stream_id: str) -> None:
        async with self._locks[stream_id]:
            record = await self._streams.get(stream_id)
            if record is not None and record["status"] == LIVE:
                await self._bring_up(record)

    # ------------------------------------------------------------ public API

    async def start_stream(self, stream_id: str, wait_s: float | None = None) -> RegistryAnswer:
        """Make the stream live: its actor is up and loaded when this answers ok.
        At most `go_live_timeout` later the answer is ok, or `no_capacity` with
        the stream as it was. With `wait_s`, a go-live still going after that
        long answers `pending` and goes on (calling again joins it)."""
        arrived = time.monotonic()
        await self._loaded
        going = self._going_live.get(stream_id)
        if going is None:
            task = asyncio.get_running_loop().create_task(self._go_live(stream_id, arrived))
            going = self._going_live[stream_id] = (time.monotonic(), task)
            task.add_done_callback(lambda t: self._going_live.pop(stream_id, None) if t is going[1] else None)
        began, task = going
        try:
            return await asyncio.wait_for(asyncio.shield(task), wait_s)
        except TimeoutError:
            waited = time.monotonic() - began
            left = max(0.0, self._config.go_live_timeout - waited)
            return RegistryAnswer(
                False,
                code="pending",
                message=PENDING.format(waited=round(waited), left=round(left)),
                data={"retryAfter": max(1, min(5, round(left)))},
            )

    async def _go_live(self, stream_id: str, arrived: float) -> RegistryAnswer:
        async with self._locks[stream_id]:
            locked = time.monotonic()
            # The durable live mark, shared with the go-lives arriving together (one database).
            record, start_time, group = await self._marks.mark(stream_id) if is_stream_id(stream_id) else (None, "", 0)
            marked_at = time.monotonic()
            if record is None:
                return RegistryAnswer(False, code="not_found", message=f"stream {stream_id} does not exist")
            if record["status"] == ENDED:
                msg = f"stream {stream_id} has ended; create a new one"
                return RegistryAnswer(False, code="conflict", message=msg)
            # The start time this go-live marked it live at (a record live from before has another).
            marked = start_time if record["status"] == LIVE and record.get("startTime") == start_time else None
            stages: dict[str, Any] = {"path": "live"}
            if stream_id not in self._live and not await self._bring_up_bounded(record, stages):
                if marked is not None:  # as it was: scheduled
                    await self._streams.unmark_live(stream_id, marked)
                timeout = self._config.go_live_timeout
                log.warning("go_live_no_capacity", stream_id=stream_id, waited_s=timeout)
                return RegistryAnswer(False, code="no_capacity", message=NO_CAPACITY.format(timeout=timeout))
            if debug_enabled(log):  # stage timings (`LOG_LEVEL=debug`): where a go-live's milliseconds go
                done = time.monotonic()
                log.debug(
                    "go_live_stages",
                    stream_id=stream_id,
                    group=group,
                    lock_ms=round(1000 * (locked - arrived), 3),
                    mark_ms=round(1000 * (marked_at - locked), 3),
                    **stages,
                    total_ms=round(1000 * (done - arrived), 3),
                )
            return RegistryAnswer(True, data=self._live[stream_id], actor=self._actors[stream_id].handle)

    async def stop_stream(self, stream_id: str) -> RegistryAnswer:
        """End the stream: its final state is stored and its actor is gone when this returns."""
        await self._loaded
        async with self._locks[stream_id]:
            record = await self._streams.get(stream_id)
            if record is None:
                return RegistryAnswer(False, code="not_found", message=f"stream {stream_id} does not exist")
            if record["status"] != LIVE:
                return RegistryAnswer(False, code="conflict", message=f"stream {stream_id} is not live")
            actor = await self._actor_of(stream_id) or StreamClient(
                stream_lifecycle.create_stream_actor(stream_id, stream_meta(record), self._config), stream_id, _CALLS
            )
            final = await actor.stop()
            ended = await self._streams.mark_ended(stream_id, now_iso(), final)
            await self._flash_sales.end_all(stream_id, "stream_stopped")  # the actor ended them for viewers
            stream_lifecycle.kill(actor.handle)
            slot = await self._slots.slot_of(stream_id)
            if slot is not None:
                await self._slots.release(slot)
            self._live.pop(stream_id, None)
            self._actors.pop(stream_id, None)
            self._bump()
            log.info(
                "stream_ended",
                stream_id=stream_id,
                likes=final.get("likes"),
                peak_viewers=final.get("peakViewers"),
                chat=final.get("chatCount"),
            )
            return RegistryAnswer(True, data={"record": ended, "final": final})

    async def schedule_changed(self, stream_id: str) -> None:
        """A stream's schedule changed (created, moved, cancelled, deleted):
        scan now, so its reserved actor is started or ended. Never waits for the scan."""
        log.debug("schedule_changed", stream_id=stream_id)
        self._rescan.set()

    async def prewarmed(self) -> dict[str, Any]:
        """Stream id -> the handle of the actor reserved for it: up, the stream
        prepared (or being prepared), not live (for operators, tests and the
        go-live benchmark)."""
        await self._loaded
        return {stream_id: spare.handle for stream_id, spare in self._prewarmed.items()}

    async def poll(self, incarnation: str | None, version: int, timeout: float) -> LiveSet:
        """The live set once it differs from (incarnation, version), or after `timeout`."""
        await self._loaded
        if incarnation == self.incarnation and version == self._version:
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), timeout)
            except TimeoutError:
                pass
        return self._live_set()

    async def live(self) -> LiveSet:
        await self._loaded
        return self._live_set()

    async def ping_pid(self) -> int:
        """This process's id (for operators and failure tests)."""
        return os.getpid()

    async def node_id(self) -> str:
        """The Ray node this registry runs on (for operators and placement tests)."""
        return str(ray.get_runtime_context().get_node_id())

    async def flush_all(self) -> int:
        """Ask every live stream to store what it has now. Returns how many did."""
        await self._loaded
        actors = list(self._actors.values())
        results = await asyncio.gather(*(a.flush() for a in actors), return_exceptions=True)
        return sum(1 for r in results if not isinstance(r, BaseException))

    # ------------------------------------------------------------ internals

    def _live_set(self) -> LiveSet:
        return LiveSet(
            self.incarnation,
            self._version,
            dict(self._live),
            {stream_id: actor.handle for stream_id, actor in self._actors.items() if stream_id in self._live},
        )

    async def _bring_up_bounded(self, record: dict[str, Any], stages: dict[str, Any] | None = None) -> bool:
        """`_bring_up`, given up (cancelled: what it started is ended) once
        `go_live_timeout` has passed while no node has a free `stream` unit.
        While units are free the actor only waits for its process to start (a
        burst on a busy node: Ray starts a few at a time), so it gets up to
        `SLOW_START_ROUNDS` more timeouts. True once the stream's actor is up."""
        timeout = self._config.go_live_timeout
        task = asyncio.get_running_loop().create_task(self._bring_up(record, stages))
        for rounds in itertools.count():
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if done:
                task.result()  # its error, if any, is the go-live's
                return True
            free = await asyncio.to_thread(stream_lifecycle.free_stream_units)
            if free < 1 or rounds >= SLOW_START_ROUNDS:
                break
            log.info("go_live_slow_start", stream_id=record["_id"], waited_s=timeout * (rounds + 1), free_units=free)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False

    async def _bring_up(self, record: dict[str, Any], stages: dict[str, Any] | None = None) -> None:
        """The stream's actor up, loaded and live: the spare reserved (and
        prepared) for it, a scheduled stream, else the one already serving it
        (after a registry restart), else a spare that adopts it, else a new
        one. Cancelled (the go-live timed out), the actor it made serve the
        stream is ended. `stages` gets the path taken and its timings."""
        stream_id = record["_id"]
        meta = stream_meta(record)
        began = time.monotonic()
        # A reservation is this incarnation's, made while the stream was scheduled, and only this
        # registry makes it live (under its lock): no other actor can serve it, so no lookup by name.
        spare, prepared = await self._reserved(stream_id)
        path = "prepared"
        actor = None if spare is not None else await self._actor_of(stream_id)
        if actor is None and spare is None:  # half the go-live's time for a spare, then an actor of its own
            spare = await self._pool.take(min(SparePool.WAIT_S, self._config.go_live_timeout / 2))
            path = "spare" if spare is not None else "new"
        elif actor is not None:
            path = "serving"
        found = time.monotonic()
        started: StreamClient | None = None  # made to serve the stream here: ended if the go-live gives up
        try:
            if actor is not None:  # serving it already: live, or prepared by a previous registry
                snapshot = await actor.go_live(meta)
            elif spare is not None and prepared is not None:  # loaded ahead: live once called (no call here)
                actor = spare
                snapshot = announced(prepared, meta)
            elif spare is not None and path == "prepared":  # prepared, found after a restart of the registry
                actor = started = spare
                snapshot = await spare.go_live(meta)
            elif spare is not None:
                started = spare
                snapshot = await spare.adopt(stream_id, meta)
                actor = StreamClient(spare.handle, stream_id, _CALLS)
            else:
                handle = stream_lifecycle.create_stream_actor(stream_id, meta, self._config)
                actor = started = StreamClient(handle, stream_id, _CALLS)
                snapshot = await actor.ready()
        except asyncio.CancelledError:
            if started is not None:
                await self._end_unfinished(stream_id, started)
            raise
        self._actors[stream_id] = actor
        self._live[stream_id] = {**snapshot["streamData"], "seq": snapshot["seq"], "epoch": snapshot["epoch"]}
        self._bump()
        if stages is not None:
            stages.update(
                path=path,
                actor_found_ms=round(1000 * (found - began), 3),
                actor_ms=round(1000 * (time.monotonic() - found), 3),
            )
        log.info("stream_live", stream_id=stream_id, seq=snapshot["seq"], epoch=snapshot["epoch"], path=path)

    async def _end_unfinished(self, stream_id: str, actor: StreamClient, slot: str | None = None) -> None:
        """A go-live gave up on this actor (still being created, or loading),
        or a reservation ended: it ends for good, and an assignment it stored
        (`slot`, else the stream's) is released, so nothing of it is left
        half-started. Ended first: a live actor whose assignment is gone would
        be taken for a spare by a restarted registry."""
        try:
            stream_lifecycle.kill(actor.handle)
            slot = slot or await self._slots.slot_of(stream_id)
            if slot is not None:
                await self._slots.release(slot)
        except Exception as e:  # noqa: BLE001 - logged; a restarted registry finds what is left by its assignment
            log.warning("go_live_cleanup_failed", stream_id=stream_id, error=repr(e))
        log.info("go_live_actor_ended", stream_id=stream_id)

    # ------------------------------------------------------------ prewarming scheduled streams

    async def _reserved(self, stream_id: str) -> tuple[StreamClient | None, dict[str, Any] | None]:
        """The spare reserved for the stream (waiting for it if it is starting;
        None if none) and its snapshot as prepared (None if not known: found
        after a restart of the registry)."""
        starting = self._prewarming.get(stream_id)
        if starting is not None:
            await asyncio.shield(starting)
        return self._prewarmed.pop(stream_id, None), self._prepared.pop(stream_id, None)

    async def _scan_forever(self) -> None:
        """Scan for scheduled streams due a reserved actor: when told, when the
        next one enters its window, and at least every `SCAN_S`."""
        while True:
            self._rescan.clear()
            wait = SCAN_S
            try:
                wait = await self._scan()
            except PyMongoError as e:
                log.warning("prewarm_scan_failed", error=str(e))
            except Exception as e:  # noqa: BLE001 - a bug in one scan is logged; the next scan tries again
                log.error("prewarm_scan_failed", error=repr(e))
            try:
                await asyncio.wait_for(self._rescan.wait(), wait)
            except TimeoutError:
                pass

    async def _scan(self) -> float:
        """Reserve an actor for each due stream, end those no longer due; the
        seconds until the next scan."""
        moment = now()
        stored = await self._streams.scheduled_times(iso(moment - timedelta(seconds=self._prewarm.hold_s)))
        scheduled = {sid: at for sid, raw in stored.items() if (at := parse_time(raw)) is not None}
        busy = set(self._live) | set(self._going_live)
        self._wanted = self._prewarm.due(scheduled, moment) - busy
        for stream_id in self._wanted:
            if stream_id not in self._prewarmed and stream_id not in self._prewarming:
                task = asyncio.get_running_loop().create_task(self._prewarm_one(stream_id))
                self._prewarming[stream_id] = task
        for stream_id in [s for s in self._prewarmed if s not in self._wanted and s not in busy]:
            await self._release(stream_id)
        upcoming = self._prewarm.next_change(scheduled, moment)
        return SCAN_S if upcoming is None else min(SCAN_S, upcoming + 0.05)

    async def _prewarm_one(self, stream_id: str) -> None:
        """Start (or take from the pool) a spare, have it prepare the stream
        (assignment stored, state loaded, not live) and reserve it, unless the
        stream stopped wanting one meanwhile (then it ends, its assignment released)."""
        spare: StreamClient | None = None
        try:
            spare = self._pool.claim()
            if spare is None:
                async with self._prewarm_starts:  # Ray starts a few worker processes at a time anyway
                    if stream_id not in self._wanted:
                        return
                    spare = await _start_spare(self._config)()
            record = await self._streams.get(stream_id)
            if record is None or record["status"] != SCHEDULED or stream_id not in self._wanted:
                _kill_spare(spare)
                return
            snapshot = await spare.prepare(stream_id, stream_meta(record))
            if stream_id not in self._wanted and stream_id not in self._going_live:
                await self._end_unfinished(stream_id, spare)
                return
            self._prewarmed[stream_id] = StreamClient(spare.handle, stream_id, _CALLS)
            self._prepared[stream_id] = snapshot
            log.info("stream_prewarmed", stream_id=stream_id)
        except Exception as e:  # noqa: BLE001 - a spare that fails to start or prepare is logged; the next scan tries again
            log.warning("prewarm_failed", stream_id=stream_id, error=repr(e))
            if spare is not None:
                await self._end_unfinished(stream_id, spare)
        finally:
            self._prewarming.pop(stream_id, None)

    async def _release(self, stream_id: str) -> None:
        """End the actor reserved (and prepared) for a stream that no longer
        wants one (cancelled, moved, deleted), and release its assignment."""
        spare = self._prewarmed.pop(stream_id)
        self._prepared.pop(stream_id, None)
        await self._end_unfinished(stream_id, spare)
        log.info("stream_prewarm_released", stream_id=stream_id)

    async def _actor_of(self, stream_id: str) -> StreamClient | None:
        """The actor that serves the stream already, if any: known here, named
        for it, or a spare that adopted it (found through its stored assignment)."""
        if stream_id in self._actors:
            return self._actors[stream_id]
        handle = stream_lifecycle.find_actor(stream_actor_name(stream_id))
        if handle is None:
            slot = await self._slots.slot_of(stream_id)
            handle = stream_lifecycle.find_actor(slot) if slot else None
        return StreamClient(handle, stream_id, _CALLS) if handle is not None else None

    def _bump(self) -> None:
        self._version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
