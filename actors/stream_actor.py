"""`StreamActor`: the Ray actor that is the single writer of one live stream.

It is a shell around `StreamState`: gateways `submit` batches of commands and
`poll` for published events; the actor applies batches in arrival order,
stores the result, then publishes.

Guarantees:

* **Loaded before serving.** Every method waits until the last checkpoint (and
  the stored recent chat) is loaded. With no checkpoint the stream starts a new
  epoch, keeping its sequence numbers above every stored chat message.
* **Stored before published or acknowledged (group commit).** Commands that
  arrive while a commit is being written wait for the next one; a commit is
  one checkpoint write (state plus the chat of that commit) and one chat
  insert, at most one per `commit_interval`. An answer to `submit` means the
  effect is stored; an event seen by `poll` is stored.
* **Idempotent submits.** A batch carries an id; submitting it again (after a
  timeout or an actor restart) returns the first answers and changes nothing.
* **Fenced.** Checkpoints are versioned; if a newer version is stored (another
  instance of this actor took over), this instance stops serving.
* **Viewer leases.** A gateway that has neither polled nor submitted for
  `gateway_lease` seconds is taken for dead: its viewers leave the count. After
  a restart every gateway of the checkpoint gets a fresh lease to come back.
* **Never blocks on the database.** Storage runs on the event loop with the
  async driver; while it fails the actor retries with backoff, reports itself
  unhealthy, publishes nothing and acknowledges nothing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import structlog

from actors.config import ActorConfig
from actors.event_log import EventLog
from actors.stream_state import ChatRecord, Command, Result, StreamMeta, StreamState
from actors.wire import encode_event
from persistence.audience import AudienceStore
from persistence.chat import ChatStore
from persistence.checkpoints import CheckpointStore
from persistence.database import connect
from wrencos.clock import now_iso

log = structlog.get_logger("actors.stream")

RETRY_MIN_S = 0.05
RETRY_MAX_S = 2.0
LEASE_CHECK_S = 1.0


class StreamEnded(Exception):
    pass


@dataclass(slots=True)
class PollResult:
    """What a gateway gets from `poll`.

    `events` are (seq, text) pairs after the gateway's position. If `snapshot`
    is set, the gateway's position could not be served (new epoch, or older
    than the log): it must replace its view with the snapshot, whose position
    is `snapshot["seq"]`, and go on from there.
    """

    incarnation: str
    epoch: str
    events: list[tuple[int, str]] = field(default_factory=list)
    snapshot: dict[str, Any] | None = None
    stopped: bool = False


@dataclass(slots=True)
class _Pending:
    gateway_id: str
    batch_id: str
    commands: list[Command]
    answer: asyncio.Future[list[Result]]


class StreamActor:
    def __init__(self, stream_id: str, meta: dict[str, Any], config: ActorConfig) -> None:
        from wrencos.logs import configure

        configure(config.log_level, "json")
        self.stream_id = stream_id
        self.incarnation = secrets.token_hex(4)
        self._meta = meta
        self._config = config
        db = connect(config.db)
        self._checkpoints = CheckpointStore(db)
        self._chat = ChatStore(db)
        self._audience = AudienceStore(db)
        self._sample: tuple[str, int] | None = None  # (minute, most viewers recorded for it)
        self._state: StreamState | None = None
        self._version = 0
        self._log = EventLog(config.event_log_size)
        self._inbox: list[_Pending] = []
        self._wake = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._published = asyncio.Event()
        self._last_commit = 0.0
        self._stopped = False
        self._fenced = False
        self._healthy = True
        self._gateways_seen: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        self._loaded = loop.create_task(self._load())
        self._committer = loop.create_task(self._commit_forever())

    # ------------------------------------------------------------ public API

    async def ready(self) -> dict[str, Any]:
        """Wait until loaded; return the snapshot (stream data, recent chat, position)."""
        return await self.snapshot()

    async def submit(self, gateway_id: str, batch_id: str, commands: list[Command]) -> list[Result]:
        """Apply a batch of commands, in order, once. Returns one `Result` per
        command once the batch's effects are stored."""
        state = await self._ready_state()
        self._gateways_seen[gateway_id] = time.monotonic()
        if self._stopped:
            return [Result.rejected("the stream has ended")] * len(commands)
        if batch_id in state.applied_batches:
            return state.applied_batches[batch_id]
        answer: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        self._inbox.append(_Pending(gateway_id, batch_id, list(commands), answer))
        self._wake.set()
        return await answer

    async def poll(self, gateway_id: str, after_seq: int, epoch: str | None, timeout: float) -> PollResult:
        """Events after `after_seq` of `epoch`, waiting up to `timeout` seconds
        for some if there are none yet (a long poll)."""
        state = await self._ready_state()
        self._gateways_seen[gateway_id] = time.monotonic()
        deadline = time.monotonic() + timeout
        while True:
            if epoch != state.epoch or not self._log.covers(after_seq):
                async with self._commit_lock:
                    return PollResult(
                        self.incarnation, state.epoch, snapshot=state.snapshot(), stopped=self._stopped
                    )
            events = self._log.since(after_seq)
            remaining = deadline - time.monotonic()
            if events or self._stopped or remaining <= 0:
                self._gateways_seen[gateway_id] = time.monotonic()
                return PollResult(self.incarnation, state.epoch, events=events, stopped=self._stopped)
            published = self._published
            try:
                await asyncio.wait_for(published.wait(), remaining)
            except TimeoutError:
                pass

    async def snapshot(self) -> dict[str, Any]:
        """The published state: consistent with the events published so far."""
        state = await self._ready_state()
        async with self._commit_lock:
            return {**state.snapshot(), "stopped": self._stopped, "stats": state.stats()}

    async def flush(self) -> None:
        """Store and publish whatever is pending now."""
        await self._ready_state()
        async with self._commit_lock:
            await self._commit_once()

    async def stop(self) -> dict[str, Any]:
        """End the stream: apply what is pending, publish `stream_stopped`, store
        the final state. Returns the final numbers. Idempotent."""
        state = await self._ready_state()
        async with self._commit_lock:
            if not self._stopped:
                await self._commit_once()
                state.stop()
                await self._commit_once(force=True)
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
            "nodeId": ray.get_runtime_context().get_node_id(),
            "incarnation": self.incarnation,
            "loaded": self._loaded.done() and self._state is not None,
            "healthy": self._healthy and not self._fenced,
            "stopped": self._stopped,
            "seq": state.seq if state else None,
            "epoch": state.epoch if state else None,
            "gateways": sorted(self._gateways_seen),
        }

    # ------------------------------------------------------------ loading

    async def _ready_state(self) -> StreamState:
        await asyncio.shield(self._loaded)
        if self._fenced:
            raise RuntimeError(f"stream {self.stream_id}: a newer instance of this actor took over")
        assert self._state is not None
        return self._state

    async def _load(self) -> None:
        cfg = self._config
        doc = await self._retry("load_checkpoint", lambda: self._checkpoints.load(self.stream_id))
        if doc is not None:
            pending = doc.get("pendingChat", [])
            # The last commit's chat is in the checkpoint; make sure it is in the chat store too.
            await self._retry("repair_chat", lambda: self._chat.insert(self.stream_id, doc["epoch"], pending))
            recent = await self._retry("load_chat", lambda: self._chat.recent(self.stream_id, cfg.history_size))
            self._state = StreamState.from_checkpoint(
                doc,
                [ChatRecord.from_doc(m) for m in recent],
                history_size=cfg.history_size,
                update_interval=cfg.update_interval,
            )
            self._version = int(doc.get("version", 0))
            log.info("stream_recovered", stream_id=self.stream_id, seq=self._state.seq,
                     epoch=self._state.epoch, incarnation=self.incarnation)
        else:
            recent = await self._retry("load_chat", lambda: self._chat.recent(self.stream_id, 1))
            last_seq = int(recent[-1]["seq"]) if recent else 0
            self._state = StreamState(
                meta=StreamMeta.from_doc(self._meta),
                seq=last_seq,
                history_size=cfg.history_size,
                update_interval=cfg.update_interval,
            )
            await self._store([])
            log.info("stream_created", stream_id=self.stream_id, epoch=self._state.epoch,
                     incarnation=self.incarnation)
        self._log = EventLog(cfg.event_log_size, last_seq=self._state.seq)
        now = time.monotonic()
        for gateway_id in self._state.gateways():
            self._gateways_seen.setdefault(gateway_id, now)

    # ------------------------------------------------------------ committing

    async def _commit_forever(self) -> None:
        try:
            await self._loaded
        except Exception:
            log.exception("stream_load_failed", stream_id=self.stream_id)
            return
        interval = self._config.commit_interval
        while not self._stopped and not self._fenced:
            assert self._state is not None
            due = self._state.update_due_in(time.monotonic())
            due = LEASE_CHECK_S if due is None else min(due, LEASE_CHECK_S)
            sale_end = self._state.next_sale_end()
            if sale_end is not None:
                due = min(due, max(0.0, (datetime.fromisoformat(sale_end) - datetime.now(timezone.utc)).total_seconds()))
            if not self._inbox and due != 0.0:
                try:
                    await asyncio.wait_for(self._wake.wait(), due)
                except TimeoutError:
                    pass
            self._wake.clear()
            wait = self._last_commit + interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            async with self._commit_lock:
                if self._stopped:
                    break
                try:
                    await self._commit_once()
                except Exception:
                    log.exception("commit_failed", stream_id=self.stream_id)

    async def _commit_once(self, force: bool = False) -> None:
        """Apply the inbox, store, publish, answer. Caller holds the commit lock."""
        state = self._state
        assert state is not None
        batches, self._inbox = self._inbox, []
        now = datetime.now(timezone.utc)
        answers = [(p.answer, state.apply_batch(p.gateway_id, p.batch_id, p.commands, now)) for p in batches]
        expired = self._expire_gateways()
        events = state.take_events(time.monotonic(), now)
        chat = state.take_new_chat()
        viewers = state.take_new_viewers()
        if batches or events or expired or force:
            await self._store(chat, viewers)
        self._last_commit = time.monotonic()
        for event in events:
            self._log.append(event.seq, encode_event(self.stream_id, state.epoch, event))
        if events:
            self._wake_pollers()
        for future, results in answers:
            if not future.done():
                future.set_result(results)
        await self._record_sample(now)

    async def _store(self, chat: list[ChatRecord], viewers: list[str] | None = None) -> None:
        """One checkpoint (with this commit's chat in it), then the chat itself,
        then the sessions that started watching. Retries until all are stored;
        a fenced instance raises."""
        assert self._state is not None
        self._version += 1
        docs = [c.to_doc() for c in chat]
        checkpoint = {**self._state.to_checkpoint(), "pendingChat": docs, "savedAt": now_iso()}
        version = self._version
        stored = await self._retry("save_checkpoint", lambda: self._checkpoints.save(self.stream_id, version, checkpoint))
        if not stored:
            self._fenced = True
            log.error("stream_fenced", stream_id=self.stream_id, version=version, incarnation=self.incarnation)
            raise RuntimeError("a newer checkpoint exists: this actor instance is stale")
        if docs:
            epoch = self._state.epoch
            await self._retry("store_chat", lambda: self._chat.insert(self.stream_id, epoch, docs))
        if viewers:
            at = now_iso()
            await self._retry("store_viewers", lambda: self._audience.record_viewers(self.stream_id, viewers, at))

    async def _record_sample(self, now: datetime) -> None:
        """Best effort, for analytics: the most viewers seen in each minute."""
        assert self._state is not None
        minute, count = now_iso()[:16], self._state.viewer_count
        if self._sample is not None and self._sample[0] == minute and count <= self._sample[1]:
            return
        self._sample = (minute, max(count, self._sample[1] if self._sample and self._sample[0] == minute else 0))
        try:
            await self._audience.record_sample(self.stream_id, minute, self._sample[1])
        except Exception as e:
            log.warning("viewer_sample_not_stored", stream_id=self.stream_id, error=repr(e))

    async def _retry(self, what: str, op: Any) -> Any:
        delay = RETRY_MIN_S
        attempt = 0
        while True:
            try:
                result = await op()
                if not self._healthy:
                    log.info("storage_recovered", stream_id=self.stream_id, op=what, attempts=attempt + 1)
                self._healthy = True
                return result
            except Exception as e:  # the database is down or slow: keep trying
                attempt += 1
                self._healthy = False
                log.warning("storage_retry", stream_id=self.stream_id, op=what, attempt=attempt,
                            error=f"{type(e).__name__}: {e}", next_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _expire_gateways(self) -> bool:
        """Drop the viewers of gateways whose lease ran out. True if any left."""
        assert self._state is not None
        limit = time.monotonic() - self._config.gateway_lease
        gone = [g for g, seen in self._gateways_seen.items() if seen < limit]
        left = 0
        for gateway_id in gone:
            del self._gateways_seen[gateway_id]
            left += self._state.drop_gateway(gateway_id)
        if gone:
            log.info("gateway_lease_expired", stream_id=self.stream_id, gateways=gone, viewers_left=left)
        return left > 0

    def _wake_pollers(self) -> None:
        published, self._published = self._published, asyncio.Event()
        published.set()


def _loggable(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if k != "pinnedProducts"}
