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
stopping an ended one says so. The live set and the answer to a start carry
each live stream's actor handle: gateways call stream actors through it.
Stream actors are created through `stream_lifecycle` and called through
`StreamClient`, by the same policy as every other caller.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
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
from core.spare_plan import SparePlan
from persistence.database import connect, ensure_indexes
from persistence.flash_sales import FlashSaleStore
from persistence.slots import SlotStore
from persistence.streams import ENDED, LIVE, SCHEDULED, StreamStore
from runtime.clock import now_iso
from runtime.logs import configure

log = structlog.get_logger("actors.registry")


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

    async def take(self) -> Any:
        """A spare for a stream going live; None when the pool is off (maximum
        0) or no spare came within `WAIT_S`."""
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
            return await asyncio.wait_for(asyncio.shield(waiter), self.WAIT_S)
        except TimeoutError:
            if waiter.done():
                return waiter.result()
            waiter.cancel()
            log.warning("spare_wait_timed_out", waited_s=self.WAIT_S)
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


_CALLS = LoggedCalls()  # the registry's calls to stream actors: failures are logged


def _start_spare(config: ActorConfig) -> Callable[[], Awaitable[StreamClient]]:
    async def start() -> StreamClient:
        spare = StreamClient(stream_lifecycle.create_spare_actor(config), None, _CALLS)
        await spare.warm()
        return spare

    return start


def _kill_spare(spare: StreamClient) -> None:
    stream_lifecycle.kill(spare.handle)


class StreamRegistry:
    def __init__(self, config: ActorConfig) -> None:
        configure(config.log_level, config.log_format)
        self._config = config
        self._db = connect(config.db)
        self._streams = StreamStore(self._db)
        self._flash_sales = FlashSaleStore(self._db)
        self._slots = SlotStore(self._db)
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
        log.info("registry_ready", incarnation=self.incarnation, live=len(self._live), spares=len(self._pool.spares))

    async def _adopt_orphans(self) -> None:
        """After a restart of the registry: spares started by its previous life
        that never adopted a stream become spares again."""
        for name in await asyncio.to_thread(stream_lifecycle.spare_names):
            if await self._slots.assignment(name) is None:
                handle = stream_lifecycle.find_actor(name)
                if handle is not None:
                    self._pool.add(StreamClient(handle, None, _CALLS))

    async def _recover(self, stream_id: str) -> None:
        async with self._locks[stream_id]:
            record = await self._streams.get(stream_id)
            if record is not None and record["status"] == LIVE:
                await self._bring_up(record)

    # ------------------------------------------------------------ public API

    async def start_stream(self, stream_id: str) -> RegistryAnswer:
        """Make the stream live: its actor is up and loaded when this returns."""
        await self._loaded
        async with self._locks[stream_id]:
            record = await self._streams.get(stream_id)
            if record is None:
                return RegistryAnswer(False, code="not_found", message=f"stream {stream_id} does not exist")
            if record["status"] == ENDED:
                return RegistryAnswer(False, code="conflict", message=f"stream {stream_id} has ended; create a new one")
            if record["status"] == SCHEDULED:
                updated = await self._streams.mark_live(stream_id, now_iso())
                record = updated or await self._streams.get(stream_id) or record
            if stream_id not in self._live:
                await self._bring_up(record)
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

    async def _bring_up(self, record: dict[str, Any]) -> None:
        """The stream's actor up and loaded: the one already serving it (after a
        registry restart), else a spare that adopts it, else a new one."""
        stream_id = record["_id"]
        meta = stream_meta(record)
        actor = await self._actor_of(stream_id)
        spare = None if actor is not None else await self._pool.take()
        if actor is not None:
            snapshot = await actor.ready()
        elif spare is not None:
            snapshot = await spare.adopt(stream_id, meta)
            actor = StreamClient(spare.handle, stream_id, _CALLS)
        else:
            actor = StreamClient(stream_lifecycle.create_stream_actor(stream_id, meta, self._config), stream_id, _CALLS)
            snapshot = await actor.ready()
        self._actors[stream_id] = actor
        self._live[stream_id] = {**snapshot["streamData"], "seq": snapshot["seq"], "epoch": snapshot["epoch"]}
        self._bump()
        log.info("stream_live", stream_id=stream_id, seq=snapshot["seq"], epoch=snapshot["epoch"])

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
