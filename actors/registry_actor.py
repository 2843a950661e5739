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
stopping an ended one says so.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from wrencos.clock import now_iso
from typing import Any

import structlog

from actors.config import ActorConfig
from persistence.database import connect, ensure_indexes
from persistence.flash_sales import FlashSaleStore
from persistence.slots import SlotStore
from persistence.streams import ENDED, LIVE, SCHEDULED, StreamStore

log = structlog.get_logger("actors.registry")


@dataclass
class RegistryAnswer:
    """`ok`, or an error with a `code` the gateway maps to an HTTP status."""

    ok: bool
    data: dict[str, Any] | None = None
    code: str | None = None  # "not_found" | "conflict" | "unavailable"
    message: str | None = None


@dataclass
class LiveSet:
    incarnation: str
    version: int
    live: dict[str, dict[str, Any]] = field(default_factory=dict)  # stream id -> announcement


def stream_meta(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "streamId": record["_id"],
        "title": record.get("title", ""),
        "description": record.get("description", ""),
        "startTime": record.get("startTime") or "",
        "streamUrl": record.get("streamUrl", ""),
        "quality": record.get("quality", "auto"),
    }


class StreamRegistry:
    def __init__(self, config: ActorConfig) -> None:
        from wrencos.logs import configure

        configure(config.log_level, "json")
        self._config = config
        self._db = connect(config.db)
        self._streams = StreamStore(self._db)
        self._flash_sales = FlashSaleStore(self._db)
        self._slots = SlotStore(self._db)
        self.incarnation = secrets.token_hex(4)
        self._version = 0
        self._live: dict[str, dict[str, Any]] = {}
        self._actors: dict[str, Any] = {}  # stream id -> the actor serving it
        self._spares: list[Any] = []  # actors started ahead, ready to adopt a stream
        self._replenishing: asyncio.Task[None] | None = None
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._changed = asyncio.Event()
        self._loaded = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        delay = 0.1
        while True:
            try:
                await ensure_indexes(self._db)
                live_ids = await self._streams.live_ids()
                break
            except Exception as e:
                log.warning("registry_db_unavailable", error=str(e), next_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        await self._adopt_orphans()
        results = await asyncio.gather(*(self._recover(i) for i in live_ids), return_exceptions=True)
        for stream_id, r in zip(live_ids, results):
            if isinstance(r, BaseException):
                log.error("stream_recovery_failed", stream_id=stream_id, error=repr(r))
        self._replenish_soon()
        log.info("registry_ready", incarnation=self.incarnation, live=len(self._live), spares=len(self._spares))

    async def _adopt_orphans(self) -> None:
        """After a restart of the registry: spares started by its previous life
        that never adopted a stream become spares again."""
        from actors import handles

        for name in await asyncio.to_thread(handles.spare_names):
            if await self._slots.assignment(name) is None:
                handle = handles.get_actor(name)
                if handle is not None:
                    self._spares.append(handle)

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
            return RegistryAnswer(True, data=self._live[stream_id])

    async def stop_stream(self, stream_id: str) -> RegistryAnswer:
        """End the stream: its final state is stored and its actor is gone when this returns."""
        from actors import handles

        await self._loaded
        async with self._locks[stream_id]:
            record = await self._streams.get(stream_id)
            if record is None:
                return RegistryAnswer(False, code="not_found", message=f"stream {stream_id} does not exist")
            if record["status"] != LIVE:
                return RegistryAnswer(False, code="conflict", message=f"stream {stream_id} is not live")
            actor = await self._actor_of(stream_id) or handles.create_stream_actor(
                stream_id, stream_meta(record), self._config
            )
            final = await _call_through_restart(lambda: actor.stop.remote())
            ended = await self._streams.mark_ended(stream_id, now_iso(), final)
            await self._flash_sales.end_all(stream_id, "stream_stopped")  # the actor ended them for viewers
            handles.kill(actor)
            slot = await self._slots.slot_of(stream_id)
            if slot is not None:
                await self._slots.release(slot)
            self._live.pop(stream_id, None)
            self._actors.pop(stream_id, None)
            self._bump()
            log.info("stream_ended", stream_id=stream_id, likes=final.get("likes"),
                     peak_viewers=final.get("peakViewers"), chat=final.get("chatCount"))
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
        return LiveSet(self.incarnation, self._version, dict(self._live))

    async def live(self) -> LiveSet:
        await self._loaded
        return LiveSet(self.incarnation, self._version, dict(self._live))

    async def ping_pid(self) -> int:
        """This process's id (for operators and failure tests)."""
        import os

        return os.getpid()

    async def node_id(self) -> str:
        """The Ray node this registry runs on (for operators and placement tests)."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    async def actor_for(self, stream_id: str) -> Any:
        """The actor serving a live stream, or None."""
        await self._loaded
        return self._actors.get(stream_id) if stream_id in self._live else None

    async def flush_all(self) -> int:
        """Ask every live stream to store what it has now. Returns how many did."""
        await self._loaded
        actors = list(self._actors.values())
        results = await asyncio.gather(*(a.flush.remote() for a in actors), return_exceptions=True)
        return sum(1 for r in results if not isinstance(r, BaseException))

    # ------------------------------------------------------------ internals

    async def _bring_up(self, record: dict[str, Any]) -> None:
        """The stream's actor up and loaded: the one already serving it (after a
        registry restart), else a spare that adopts it, else a new one."""
        from actors import handles

        stream_id = record["_id"]
        meta = stream_meta(record)
        actor = await self._actor_of(stream_id)
        if actor is not None:
            snapshot = await _call_through_restart(lambda: actor.ready.remote())
        elif self._spares:
            actor = self._spares.pop(0)
            self._replenish_soon()
            snapshot = await _call_through_restart(lambda: actor.adopt.remote(stream_id, meta))
        else:
            actor = handles.create_stream_actor(stream_id, meta, self._config)
            snapshot = await actor.ready.remote()
        self._actors[stream_id] = actor
        self._live[stream_id] = {**snapshot["streamData"], "seq": snapshot["seq"], "epoch": snapshot["epoch"]}
        self._bump()
        log.info("stream_live", stream_id=stream_id, seq=snapshot["seq"], epoch=snapshot["epoch"])

    async def _actor_of(self, stream_id: str) -> Any:
        """The actor that serves the stream already, if any: known here, named
        for it, or a spare that adopted it (found through its stored assignment)."""
        from actors import handles

        if stream_id in self._actors:
            return self._actors[stream_id]
        actor = handles.get_actor(handles.stream_actor_name(stream_id))
        if actor is None:
            slot = await self._slots.slot_of(stream_id)
            actor = handles.get_actor(slot) if slot else None
        return actor

    def _replenish_soon(self) -> None:
        if self._replenishing is None or self._replenishing.done():
            self._replenishing = asyncio.get_running_loop().create_task(self._replenish())

    async def _replenish(self) -> None:
        """Start spares until the pool is full, one at a time (a process start
        costs a core for a moment: never a burst of them)."""
        from actors import handles

        while len(self._spares) < self._config.spare_actors:
            spare = handles.create_spare_actor(self._config)
            try:
                await spare.warm.remote()
            except Exception as e:
                log.warning("spare_actor_failed", error=repr(e))
                await asyncio.sleep(1.0)
                continue
            self._spares.append(spare)

    def _bump(self) -> None:
        self._version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


async def _call_through_restart(call: Any, patience_s: float = 30.0) -> Any:
    """Call an actor method, waiting out a restart of the actor (its calls fail
    while Ray brings it back). The methods called this way are idempotent."""
    import ray

    deadline = asyncio.get_running_loop().time() + patience_s
    while True:
        try:
            return await call()
        except ray.exceptions.ActorUnavailableError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
