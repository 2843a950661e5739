"""`StreamRelay`: carries one live stream between this gateway and its actor.

Inbound, commands from local connections are queued and sent as one batch
per round trip: at most one batch is in flight per stream, so a stream's
commands from this gateway arrive in the order they were sent. A batch that
fails because the actor is restarting is sent again with the same id; the
actor applies each batch id at most once.

Nothing on the relay's path waits on a timer: a command goes to the actor
as soon as no batch is in flight (those queued meanwhile go in the next, as
Nagle's rule would have it), and events go to the hub as soon as the long
poll returns them; the hub's ticks adapt the same way (`core.pacing`).

Like taps that need no answer but an error (no client id) and follow one
another in the queue travel as one `ToggleLike` of many likers (`more`):
nothing is reordered, the stream applies each tap in order, and a storm of
taps costs the gateway no future, answer or command per tap, and the actor
and its journal one command per run instead of one per tap.

Outbound, one long poll at a time fetches the stream's new events. Each is
applied to the local `StreamView` and published to local watchers as the
exact text the actor encoded: the actor delivers once per gateway, the
gateway fans out. Only while this gateway has an audience for the stream (a
watcher, or an admin, who sees every stream): a relay with nobody to deliver
to for `idle_after` seconds stops polling (`active` turns False) and its view is no
longer current; the next viewer wakes it (`attend`) and waits for it to catch
up from the actor. So a stream's actor serves only the gateways that have
its viewers, however many gateways the cluster runs.

Old apps watching nothing are moved onto a stream when it is announced
(`stream_started`), before the relay's view has loaded: the first snapshot
brings them the chat, and the counts, of anything that happened between the
announced position and the snapshot's (a chat sent right after going live).

When the actor restarted (a new incarnation), the relay tells it the viewer
sessions it holds (`SyncViewers`), and if the actor's log no longer covers the
relay's position it takes a fresh snapshot and delivers the chat it missed.

The relay holds no actor handle of its own: every call takes the stream's
`StreamClient` from the live set (`locate`, the directory's), so once an actor
is fenced or gone the next call reaches whichever actor the registry names
now. Timeouts and retries while the actor restarts are the client's
(`actors.call_policy`); the relay only waits, without blocking, for the live
set to name an actor, and after SUBMIT_PATIENCE_S answers a batch it could
not deliver with a refusal.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from actors.call_policy import ActorCallError, ActorFailed, ActorFenced, ActorGone, ActorUnavailable
from actors.stream_client import StreamClient
from core.commands import Command, EndFlashSale, FlashSaleChanged, GatewayGone, Join, Leave, SyncViewers, ToggleLike
from core.results import Result
from core.stream_view import StreamView
from core.wire import decode, encode
from gateway.metrics import GatewayMetrics
from gateway.streams.hub import Delivery, Hub
from runtime.logs import debug_enabled

log = structlog.get_logger("gateway.relay")

RECENT_EVENTS = 4096  # events kept here for clients resuming through this gateway
POLL_TIMEOUT_S = 2.0  # well inside the actor's gateway lease
MAX_BATCH = 512
MAX_LIKE_RUN = 4096  # taps in one command, so one batch stays bounded
RETRY_MIN_S = 0.05
RETRY_MAX_S = 0.2  # an actor restart takes about a second: look again soon
SUBMIT_PATIENCE_S = 30.0  # a batch whose stream has no reachable actor this long is refused
# Commands (each like tap counted) queued toward the actor before new ones are refused. A like
# storm of 20,000 taps/s queues about 1,000 per 50 ms round trip and 36,000 over a 1.8 s actor
# restart; 50,000 never refuses that. Measured (tests/system/test_relay_backpressure.py, the actor
# SIGSTOPped, 20,000 queued): a queued like tap costs the gateway about 120 bytes of RSS (6 MiB at
# the bound), a queued chat about 1.3 KB (62 MiB at the bound, per stalled stream). Chat is limited to 5 a second per
# connection, so only thousands of chatting connections on one gateway reach that; lower
# RELAY_OUTBOX_MAX_COMMANDS where a gateway's memory is tighter.
OUTBOX_MAX_COMMANDS = 50_000
OUTBOX_RETRY_AFTER_S = 2  # about one actor restart
# What the gateway itself must tell the actor (viewers it holds, sales' stock) is queued even when
# the outbox is full: a handful per viewer or order, and refusing it would leave the stream wrong.
NEVER_REFUSED = (Join, Leave, SyncViewers, GatewayGone, FlashSaleChanged, EndFlashSale)
IDLE_AFTER_S = 10.0  # no audience this long: stop polling (a viewer coming back costs one catch-up poll)
# A viewer waits this long for the view to catch up (an actor restarting and loading takes seconds,
# a big stream's load more); then it is told the stream is unavailable and to try again.
ATTEND_TIMEOUT_S = 30.0


class StreamRelay:
    def __init__(
        self,
        stream_id: str,
        gateway_id: str,
        hub: Hub,
        locate: Callable[[], StreamClient | None],
        history_size: int = 50,
        metrics: GatewayMetrics | None = None,
        idle_after: float = IDLE_AFTER_S,
        outbox_max: int = OUTBOX_MAX_COMMANDS,
        announced: tuple[int, str] | None = None,
    ) -> None:
        """`locate()`: the client of the actor the live set names for the stream now, if any.
        `announced`: the position (seq, epoch) of the `stream_started` this gateway broadcast
        for the stream, which old apps following it were moved in at before the view loaded."""
        self.stream_id = stream_id
        self._locate = locate
        self.idle_after = idle_after
        self.gateway_id = gateway_id
        self.hub = hub
        self.metrics = metrics or GatewayMetrics()
        self.view = StreamView(stream_id, history_size)
        self.ready = asyncio.Event()  # the view is current (set while active, once caught up)
        self.active = True  # polling the actor; False while nobody here watches the stream
        self._wanted = asyncio.Event()
        self.stopped = asyncio.Event()  # the actor published stream_stopped
        self.recent: deque[tuple[int, str]] = deque(maxlen=RECENT_EVENTS)
        self._advanced = asyncio.Event()
        # (command, its future), or a run of like taps: (_LikeRun, None)
        self._outbox: list[tuple[Command | _LikeRun, asyncio.Future[Result] | None]] = []
        self.healthy = True  # the actor's last poll said it stores its commits (not degraded)
        self._queued = 0  # commands in the outbox, each like tap counted
        self.outbox_max = outbox_max
        self._kick = asyncio.Event()
        self._queued_since: float | None = None  # when the oldest command in the outbox was queued
        self._batch_ids = itertools.count(1)
        self._incarnation: str | None = None
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._unwatched_since: float | None = None  # since when nobody here watches (while polling)
        self._announced = announced

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._poll_forever(), name=f"poll:{self.stream_id}"),
            asyncio.create_task(self._send_forever(), name=f"send:{self.stream_id}"),
        ]

    async def close(self) -> None:
        self._closed = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        ended = Result.rejected("the stream has ended")
        for item, fut in self._outbox:
            if isinstance(item, _LikeRun):
                item.answer(ended)
            elif fut is not None and not fut.done():
                fut.set_result(ended)
        self._outbox.clear()
        self._queued = 0

    @property
    def queued(self) -> int:
        """Commands waiting to be sent to the actor (each like tap counted)."""
        return self._queued

    def _full(self) -> Result | None:
        """A refusal when the outbox is at its bound (the actor is slow or restarting):
        nothing already queued is dropped, the new command is not applied, so an app
        resending it later with the same client id has it applied exactly once."""
        if self._queued < self.outbox_max:
            return None
        self.metrics.traffic.refused["busy"] += 1
        return Result.rejected("the stream is busy; try again", "busy", retryAfter=OUTBOX_RETRY_AFTER_S)

    async def attend(self) -> None:
        """Wait until the view is current: wakes an idle relay (someone here
        is about to watch) and waits for its catch-up, at most ATTEND_TIMEOUT_S;
        then raises `ActorUnavailable` (the caller answers it "try again")."""
        self._wanted.set()
        try:
            await asyncio.wait_for(self.ready.wait(), ATTEND_TIMEOUT_S)
        except TimeoutError:
            raise ActorUnavailable(
                f"stream {self.stream_id} did not catch up within {ATTEND_TIMEOUT_S:g} s; try again shortly",
                f"the actor of stream {self.stream_id}",
                "attend",
            ) from None

    def submit(self, command: Command) -> asyncio.Future[Result]:
        """Queue a command for the stream. The future resolves once it is stored."""
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        if self._closed:
            fut.set_result(Result.rejected("the stream has ended"))
            return fut
        refused = None if isinstance(command, NEVER_REFUSED) else self._full()
        if refused is not None:
            fut.set_result(refused)
            return fut
        self._queued += 1
        if not self._outbox:
            self._queued_since = time.monotonic()
        self._outbox.append((command, fut))
        self._kick.set()
        return fut

    def toggle_like(self, liker: str, on_error: Callable[[Result], None]) -> None:
        """Queue a like tap that needs no answer unless it is refused (`on_error`).
        A tap right behind another such tap joins its run (see the module doc)."""
        if self._closed:
            on_error(Result.rejected("the stream has ended"))
            return
        refused = self._full()
        if refused is not None:
            on_error(refused)
            return
        self._queued += 1
        outbox = self._outbox
        if outbox:
            run = outbox[-1][0]
            if run.__class__ is _LikeRun and len(run.likers) < MAX_LIKE_RUN:
                run.likers.append(liker)
                run.on_error.append(on_error)
                return
        if not outbox:
            self._queued_since = time.monotonic()
        outbox.append((_LikeRun([liker], [on_error]), None))
        self._kick.set()

    # ------------------------------------------------------------ outbound

    async def _idle_if_unwatched(self) -> bool:
        """Stop polling after `IDLE_AFTER_S` without an audience; return once
        one comes. True if it was idle (the view must catch up at once)."""
        if self.hub.has_audience(self.stream_id) or self._wanted.is_set():
            self._unwatched_since = None
            self._wanted.clear()
            return False
        now = asyncio.get_running_loop().time()
        if self._unwatched_since is None:
            self._unwatched_since = now
        if now - self._unwatched_since < self.idle_after:
            return False
        self.active = False
        self.ready.clear()
        log.info("relay_idle", stream_id=self.stream_id)
        await self._wanted.wait()
        self._wanted.clear()
        self._unwatched_since = None
        self.active = True
        log.info("relay_active", stream_id=self.stream_id)
        return True

    async def _poll_forever(self) -> None:
        delay = RETRY_MIN_S
        self._unwatched_since = None
        while not self._closed:
            woke = await self._idle_if_unwatched()
            actor = self._locate()
            if actor is None:  # the live set names no actor (yet): look again
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            try:
                # Just woken: whatever there is now, without waiting for new events.
                wait = 0.0 if woke or not self.ready.is_set() else POLL_TIMEOUT_S
                result = await actor.poll(self.gateway_id, self.view.seq, self.view.epoch, wait)
            except ActorCallError as e:  # gone or fenced: the next turn takes the live set's actor
                log.info("poll_retry", stream_id=self.stream_id, error=e.code, next_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_MIN_S
            self._receive(result)
            if result.stopped:
                self.stopped.set()
                return

    def _receive(self, result: Any) -> None:
        restarted = self._incarnation is not None and result.incarnation != self._incarnation
        self._incarnation = result.incarnation
        self.healthy = bool(getattr(result, "healthy", True))
        if restarted:
            log.info("stream_actor_restarted", stream_id=self.stream_id, incarnation=result.incarnation)
            self.submit(SyncViewers(tuple(self.hub.sessions(self.stream_id))))
        deliveries: list[Delivery] = []
        if result.snapshot is not None:
            had_view = self.view.loaded
            # Before the first load, whoever watches here was shown the announced position.
            seen = None if had_view else self._announced
            self._announced = None
            self.recent.clear()  # positions before the snapshot can no longer be served from here
            missed = self.view.reset(result.snapshot, seen)
            if had_view or (seen is not None and (seen[1] != self.view.epoch or self.view.seq > seen[0])):
                deliveries += [self.view.chat_frame(m) for m in missed]
                deliveries.append(self._update_delivery(self.view.update_event(), None))
        for seq, text in result.events:
            event = decode(text)
            self.view.apply(event)
            self.recent.append((seq, text))
            if event["type"] == "stream_update":
                deliveries.append(self._update_delivery(event, text))
            elif event["type"] != "stream_stopped":  # announced to everyone by the directory
                deliveries.append(text)
        self.metrics.traffic.events_received += len(result.events)
        if result.events and debug_enabled(log):  # joined with the actor's `commit_stages` by seq
            log.debug("poll_received", stream_id=self.stream_id, last_seq=result.events[-1][0], received_at=time.time())
        if deliveries:
            self.hub.publish(self.stream_id, deliveries)
        if self.view.loaded:
            self.ready.set()
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    def _update_delivery(self, event: dict[str, Any], text: str | None) -> Delivery:
        """A stream_update: as the actor encoded it for opted-in apps; for each
        old app, counts plus whether it likes itself (`StreamView.personal_update`)."""
        view = self.view
        return (text or encode(event), lambda viewer: view.personal_update(event, viewer))

    # ------------------------------------------------------------ resumption

    def local_events_after(self, seq: int) -> list[tuple[int, str]] | None:
        """The events after `seq` up to the view's position, if all are held here."""
        if seq == self.view.seq:
            return []
        if not self.recent or not (self.recent[0][0] - 1 <= seq < self.view.seq):
            return None
        return [(s, t) for s, t in self.recent if s > seq]

    async def events_after(self, seq: int, epoch: str) -> list[tuple[int, str]] | None:
        """The events after `seq` of `epoch` up to the view's position, from
        here or else from the actor; None if they can no longer all be had.
        Waits briefly for this gateway to catch up if the client is ahead of it."""
        deadline = asyncio.get_running_loop().time() + 3.0
        while self.view.seq < seq and asyncio.get_running_loop().time() < deadline:
            advanced = self._advanced
            try:
                await asyncio.wait_for(advanced.wait(), 0.5)
            except TimeoutError:
                pass
        if epoch != self.view.epoch or seq > self.view.seq:
            return None
        local = self.local_events_after(seq)
        if local is not None:
            return local
        actor = self._locate()
        if actor is None:
            return None
        try:
            fetched = await actor.events_since(seq, epoch)
        except ActorCallError:
            return None
        if fetched is None:
            return None
        # The actor may be ahead of this gateway or behind it by now: keep up to the view's
        # position, then whatever arrived here meanwhile.
        merged = {s: t for s, t in fetched if s <= self.view.seq}
        for s, t in self.recent:
            if s > seq:
                merged[s] = t
        events = [(s, merged[s]) for s in sorted(merged)]
        if [s for s, _ in events] != list(range(seq + 1, self.view.seq + 1)):
            return None
        return events

    # ------------------------------------------------------------ inbound

    async def _send_forever(self) -> None:
        while not self._closed:
            await self._kick.wait()
            self._kick.clear()
            while self._outbox and not self._closed:
                batch = self._outbox[:MAX_BATCH]
                del self._outbox[:MAX_BATCH]
                sent_at = time.monotonic()
                queued_since, self._queued_since = self._queued_since, (sent_at if self._outbox else None)
                self._queued -= sum(len(c.likers) if isinstance(c, _LikeRun) else 1 for c, _ in batch)
                batch_id = f"{self.gateway_id}:{next(self._batch_ids)}"
                commands: list[Command] = [c.command() if isinstance(c, _LikeRun) else c for c, _ in batch]
                kinds = self.metrics.traffic.commands
                for command in commands:
                    kinds[type(command).__name__] += 1
                results = await self._submit(batch_id, commands)
                if debug_enabled(log):  # stage timings (`LOG_LEVEL=debug`): where a quiet message's milliseconds go
                    log.debug(
                        "submit_stages",
                        stream_id=self.stream_id,
                        commands=len(commands),
                        outbox_ms=round(1000 * (sent_at - (queued_since or sent_at)), 3),
                        round_trip_ms=round(1000 * (time.monotonic() - sent_at), 3),
                    )
                for (item, fut), r in zip(batch, results, strict=True):  # _submit answers each command
                    if isinstance(item, _LikeRun):
                        if not r.ok:
                            item.answer(r)
                    elif fut is not None and not fut.done():
                        fut.set_result(r)

    async def _submit(self, batch_id: str, commands: list[Command]) -> list[Result]:
        """The batch's results from the actor the live set names. The same batch
        id goes again after a gone or fenced actor (the next actor applies it once)."""
        delay = RETRY_MIN_S
        deadline = asyncio.get_running_loop().time() + SUBMIT_PATIENCE_S
        while True:
            actor = self._locate()
            if actor is None:
                log.info("submit_retry", stream_id=self.stream_id, batch_id=batch_id, error="no_actor")
            else:
                try:
                    results = await actor.submit(self.gateway_id, batch_id, commands)
                    if len(results) == len(commands):
                        return results
                    return [Result(ok=True)] * len(commands)
                except (ActorGone, ActorFenced) as e:  # ended, or replaced: the live set names the next one
                    if self.stopped.is_set() or self._closed:
                        return [Result.rejected("the stream has ended")] * len(commands)
                    log.info("submit_retry", stream_id=self.stream_id, batch_id=batch_id, error=e.code)
                except ActorFailed as e:
                    log.error("submit_failed", stream_id=self.stream_id, batch_id=batch_id, error=str(e.__cause__))
                    return [_FAILED] * len(commands)
                except ActorCallError as e:  # unavailable beyond the client's patience, timed out, refused
                    log.warning("submit_failed", stream_id=self.stream_id, batch_id=batch_id, error=e.code)
                    return [_UNAVAILABLE] * len(commands)
            if asyncio.get_running_loop().time() > deadline:
                return [_UNAVAILABLE] * len(commands)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)


# What a batch's commands are answered when no actor took them: retryable, so they carry the code
# and `retryAfter` that make REST answer 503 with Retry-After and tell an opted-in app to resend.
_UNAVAILABLE = Result.rejected("the stream is unavailable; try again", "unavailable", retryAfter=1)
_FAILED = Result.rejected("the stream could not take this; try again", "internal", retryAfter=1)


class _LikeRun:
    """Like taps queued back to back, each with whom to tell if it is refused."""

    __slots__ = ("likers", "on_error")

    def __init__(self, likers: list[str], on_error: list[Callable[[Result], None]]) -> None:
        self.likers = likers
        self.on_error = on_error

    def command(self) -> ToggleLike:
        return ToggleLike(self.likers[0], None, tuple(self.likers[1:]))

    def answer(self, result: Result) -> None:
        """A refusal reaches every tap of the run, as it would have one by one."""
        for tell in self.on_error:
            tell(result)


def on_result(fut: asyncio.Future[Result], callback: Callable[[Result], None]) -> None:
    """Run `callback` with the result once the command is stored."""
    fut.add_done_callback(lambda f: callback(f.result()) if not f.cancelled() else None)
