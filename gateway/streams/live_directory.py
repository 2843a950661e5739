"""`LiveDirectory`: which streams are live, as this gateway knows it.

It long-polls the cluster's `StreamRegistry` and keeps one `StreamRelay` per
live stream. A stream appearing is announced to every local connection
(`stream_started`) and old apps that watch nothing follow it when it is the
only live stream; a stream disappearing is announced (`stream_stopped`) after
its relay delivered its last events.

Starting and stopping go through the registry (`start`, `stop`); the answer
is applied here at once, so the caller's own connections see the change
without waiting for the next poll. Applying the same change twice is a no-op.

The live set names each live stream's actor: it keeps a `StreamClient`
for each (replaced when the registry names another actor), which relays and
REST reads use. No stream actor is looked up by name. Calls follow
`actors.call_policy`; their failures reach callers as `ActorCallError`s.

`registry_answers()` is the health check `/ready` uses: one bounded ping of
the registry, its answer shared by the checks of the next REGISTRY_CHECK_TTL_S.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from actors.call_policy import ActorCallError, ActorGone, ActorUnavailable
from actors.registry_client import RegistryClient
from actors.stream_client import StreamClient
from core.commands import GatewayGone, Join
from core.live_set import LiveSet, RegistryAnswer
from core.wire import encode
from gateway.metrics import GatewayMetrics
from gateway.streams.hub import Hub
from gateway.streams.stream_relay import OUTBOX_MAX_COMMANDS, StreamRelay
from persistence.streams import is_stream_id

log = structlog.get_logger("gateway.directory")

T = TypeVar("T")

POLL_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 3.0
FIND_REGISTRY_S = 5.0  # looking the registry up by name asks Ray's control store (a millisecond when healthy)
# /ready must itself answer quickly while the registry restarts (a restart takes about 2 s here,
# measured; the ping itself a millisecond), and a restart should not hide behind the check's wait.
REGISTRY_CHECK_S = 1.0
REGISTRY_CHECK_TTL_S = 0.5  # a flood of /ready costs the registry at most two pings a second
# A go-live or stop first asks whether the registry answers at all: while the head is down (or the
# registry restarts) the admin is refused at once with 503 and Retry-After instead of waiting out the
# go-live's own bound. Looser than /ready's check, so a loaded but healthy registry is never refused.
LIFECYCLE_CHECK_S = 3.0


class LiveDirectory:
    def __init__(
        self,
        hub: Hub,
        gateway_id: str,
        history_size: int = 50,
        metrics: GatewayMetrics | None = None,
        relay_idle_after: float = 10.0,
        relay_outbox_max: int = OUTBOX_MAX_COMMANDS,
    ) -> None:
        self.hub = hub
        self.relay_outbox_max = relay_outbox_max
        self.relay_idle_after = relay_idle_after
        self.metrics = metrics or GatewayMetrics()
        self.gateway_id = gateway_id
        self.history_size = history_size
        self.live: dict[str, dict[str, Any]] = {}
        self.relays: dict[str, StreamRelay] = {}
        self._clients: dict[str, StreamClient] = {}  # stream id -> its actor, as the live set names it
        self.synced = asyncio.Event()
        self._incarnation: str | None = None
        self._version = -1
        self._task: asyncio.Task[None] | None = None
        self._registry: RegistryClient | None = None
        self._registry_check: asyncio.Task[bool] | None = None  # the last ping, running or done
        self._live_fetch: asyncio.Task[None] | None = None  # the last `live_here` question, running or done
        self._registry_checked_at = float("-inf")

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll_forever(), name="directory")

    async def close(self) -> None:
        tasks = [t for t in (self._task, self._registry_check, self._live_fetch) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(r.close() for r in self.relays.values()), return_exceptions=True)
        self.relays.clear()

    async def leave_all(self, timeout: float = 3.0) -> None:
        """Tell every live stream that this gateway's viewers are gone (graceful shutdown)."""
        answers = [relay.submit(GatewayGone()) for relay in self.relays.values()]
        if answers:
            try:
                await asyncio.wait_for(asyncio.gather(*answers), timeout)
            except TimeoutError:
                log.warning("leave_all_timed_out", streams=len(answers))

    def sole_live(self) -> str | None:
        return next(iter(self.live)) if len(self.live) == 1 else None

    def relay(self, stream_id: str) -> StreamRelay | None:
        return self.relays.get(stream_id)

    def stream_client(self, stream_id: str) -> StreamClient | None:
        """The client of the actor serving a live stream, as the live set names it; None if not live here."""
        return self._clients.get(stream_id)

    async def start_stream(self, stream_id: str, wait_s: float | None = None) -> RegistryAnswer:
        """Raises `ActorCallError` if the registry gives no answer (`ActorUnavailable` at once when it
        does not answer a ping within LIFECYCLE_CHECK_S). `wait_s`: see `RegistryClient.start_stream`."""
        await self._registry_reachable("start_stream")
        answer = await self._call_registry(lambda registry: registry.start_stream(stream_id, wait_s))
        if answer.ok and answer.data is not None:
            self._name_actor(stream_id, answer.actor)
            self._appeared(stream_id, answer.data)
        return answer

    async def schedule_changed(self, stream_id: str) -> None:
        """Tell the registry a stream's schedule changed. Best effort: never raises
        (the registry's periodic scan finds the change anyway)."""
        try:
            await self._call_registry(lambda registry: registry.schedule_changed(stream_id))
        except ActorCallError as e:
            log.info("schedule_change_not_told", stream_id=stream_id, error=e.code)

    async def stop_stream(self, stream_id: str) -> RegistryAnswer:
        """Raises `ActorCallError` if the registry gives no answer (`ActorUnavailable` at once when it
        does not answer a ping within LIFECYCLE_CHECK_S)."""
        await self._registry_reachable("stop_stream")
        answer = await self._call_registry(lambda registry: registry.stop_stream(stream_id))
        if answer.ok:
            await self._disappeared(stream_id)
        return answer

    # ------------------------------------------------------------ the registry

    async def registry_answers(self) -> bool:
        """True when the registry answered a ping within REGISTRY_CHECK_S (retries
        of the call policy included); never raises. Checks started less than
        REGISTRY_CHECK_TTL_S apart, or while one runs, share its ping: any number
        of callers cost the registry at most one call per REGISTRY_CHECK_TTL_S."""
        now = asyncio.get_running_loop().time()
        check = self._registry_check
        if check is None or (check.done() and now - self._registry_checked_at >= REGISTRY_CHECK_TTL_S):
            self._registry_checked_at = now
            check = self._registry_check = asyncio.create_task(
                self._ping_registry(REGISTRY_CHECK_S), name="registry-check"
            )
        return await asyncio.shield(check)  # a caller cancelled leaves the ping to the others

    async def _registry_reachable(self, method: str) -> None:
        """Raises `ActorUnavailable` unless the registry answers a ping within LIFECYCLE_CHECK_S."""
        if not await self._ping_registry(LIFECYCLE_CHECK_S):
            log.warning("registry_unreachable", method=method, within_s=LIFECYCLE_CHECK_S)
            raise ActorUnavailable(
                "the stream registry does not answer (the cluster's head may be restarting): try again shortly",
                "registry",
                method,
            )

    async def _ping_registry(self, within_s: float) -> bool:
        """Whether the registry answers a ping within `within_s` (the call policy's retries included)."""
        try:
            await asyncio.wait_for(self._call_registry(lambda registry: registry.ping_pid()), within_s)
        except (ActorCallError, TimeoutError):
            return False
        return True

    async def _get_registry(self) -> RegistryClient:
        """The registry's client; `ActorUnavailable` while no registry runs, or while
        Ray's control store does not say within FIND_REGISTRY_S."""
        if self._registry is None:
            try:
                self._registry = await asyncio.wait_for(
                    asyncio.to_thread(RegistryClient.find, self.metrics), FIND_REGISTRY_S
                )
            except TimeoutError:
                raise ActorUnavailable(
                    f"Ray did not say within {FIND_REGISTRY_S:g} s where the stream registry runs; try again",
                    "the stream registry",
                ) from None
            if self._registry is None:
                raise ActorUnavailable(
                    "the stream registry is not running: start the system with `wrencos run`", "the stream registry"
                )
        return self._registry

    async def _call_registry(self, method: Callable[[RegistryClient], Awaitable[T]]) -> T:
        """One call to the registry. A registry gone for good is forgotten (the
        next call looks for the one running now) and reported as unavailable."""
        registry = await self._get_registry()
        try:
            return await method(registry)
        except ActorGone as e:
            if self._registry is registry:
                self._registry = None
            raise ActorUnavailable(e.message, e.actor, e.method) from e

    async def _poll_forever(self) -> None:
        delay = 0.05
        while True:
            try:
                live_set = await self._call_registry(
                    lambda registry: registry.poll(self._incarnation, self._version, POLL_TIMEOUT_S)
                )
            except ActorCallError as e:
                log.warning("registry_poll_retry", error=e.code, next_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            await self._apply(live_set)
            self.synced.set()

    async def _apply(self, live_set: LiveSet) -> None:
        """Take `live_set` as the registry's, unless this gateway holds a newer one of the same
        registry (asked for meanwhile by `live_here`)."""
        if live_set.incarnation == self._incarnation and live_set.version <= self._version:
            return
        self._incarnation, self._version = live_set.incarnation, live_set.version
        for stream_id in [s for s in self.live if s not in live_set.live]:
            await self._disappeared(stream_id)
        for stream_id, announcement in live_set.live.items():
            self._name_actor(stream_id, live_set.actors.get(stream_id))
            self._appeared(stream_id, announcement)

    async def live_here(self, stream_id: str) -> bool:
        """Whether `stream_id` is live, as this gateway can tell within LIFECYCLE_CHECK_S: the live
        set it holds, or, for a stream it has not heard of, the registry's now. The live set reaches
        a gateway by its long poll, which a loaded node can be slow to run: a viewer sent here just
        after a go-live would otherwise be told the stream is not live. One question to the registry
        at a time, shared by whoever asks meanwhile; an id that cannot be a stream's never reaches it.
        False when the registry does not answer in time."""
        if stream_id in self.live:
            return True
        if not is_stream_id(stream_id):
            return False
        fetch = self._live_fetch
        if fetch is None or fetch.done():
            fetch = self._live_fetch = asyncio.create_task(self._fetch_live_set(), name="live-set")
        try:
            await asyncio.wait_for(asyncio.shield(fetch), LIFECYCLE_CHECK_S)
        except (ActorCallError, TimeoutError):
            return False
        return stream_id in self.live

    async def _fetch_live_set(self) -> None:
        await self._apply(await self._call_registry(lambda registry: registry.live()))

    # ------------------------------------------------------------ changes

    def _name_actor(self, stream_id: str, handle: Any) -> None:
        """The live set names `handle` as the stream's actor: calls go to it from now on."""
        if handle is None:
            return
        client = self._clients.get(stream_id)
        if client is None or not client.same_actor(handle):
            self._clients[stream_id] = StreamClient(handle, stream_id, self.metrics)

    def _appeared(self, stream_id: str, announcement: dict[str, Any]) -> None:
        if stream_id in self.live:
            return
        self.live[stream_id] = announcement
        relay = StreamRelay(
            stream_id,
            self.gateway_id,
            self.hub,
            lambda: self.stream_client(stream_id),
            self.history_size,
            self.metrics,
            self.relay_idle_after,
            self.relay_outbox_max,
            _position(announcement),
        )
        self.relays[stream_id] = relay
        relay.start()
        stream_data = {k: v for k, v in announcement.items() if k not in ("seq", "epoch")}
        self.hub.broadcast(
            encode(
                {
                    "type": "stream_started",
                    "streamData": stream_data,
                    "streamId": stream_id,
                    "seq": announcement.get("seq"),
                    "epoch": announcement.get("epoch"),
                }
            )
        )
        log.info("stream_appeared", stream_id=stream_id)
        sole = self.sole_live()
        if sole is not None:
            for conn in self.hub.followers_without_stream():
                if self.hub.watch(conn, sole):
                    relay.submit(Join(conn.session_id or ""))

    async def _disappeared(self, stream_id: str) -> None:
        if stream_id not in self.live:
            return
        del self.live[stream_id]
        client = self._clients.get(stream_id)
        relay = self.relays.pop(stream_id, None)
        if relay is not None:
            if relay.active:  # let its watchers get the stream's last events first
                try:
                    await asyncio.wait_for(relay.stopped.wait(), DRAIN_TIMEOUT_S)
                except TimeoutError:
                    pass
            await relay.close()
        if stream_id not in self.live and self._clients.get(stream_id) is client:  # not live again meanwhile
            self._clients.pop(stream_id, None)
        for conn in self.hub.watchers(stream_id):
            self.hub.unwatch(conn)
        position: dict[str, object] = {}
        if relay is not None and relay.view.loaded:
            position = {"seq": relay.view.seq, "epoch": relay.view.epoch}
        self.hub.broadcast(encode({"type": "stream_stopped", "streamId": stream_id, **position}))
        log.info("stream_disappeared", stream_id=stream_id)


def _position(announcement: dict[str, Any]) -> tuple[int, str] | None:
    """The (seq, epoch) a `stream_started` built from `announcement` shows, if it names one."""
    seq, epoch = announcement.get("seq"), announcement.get("epoch")
    return (int(seq), str(epoch)) if isinstance(seq, int) and isinstance(epoch, str) else None
