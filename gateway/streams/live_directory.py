"""`LiveDirectory`: which streams are live, as this gateway knows it.

It long-polls the cluster's `StreamRegistry` and keeps one `StreamRelay` per
live stream. A stream appearing is announced to every local connection
(`stream_started`) and old apps that watch nothing follow it when it is the
only live stream; a stream disappearing is announced (`stream_stopped`) after
its relay delivered its last events.

Starting and stopping go through the registry (`start`, `stop`); the answer
is applied here at once, so the caller's own connections see the change
without waiting for the next poll. Applying the same change twice is a no-op.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
import structlog

from actors import handles
from core.live_set import LiveSet, RegistryAnswer
from core.commands import GatewayGone, Join
from core.wire import encode
from gateway.streams.hub import Hub
from gateway.metrics import GatewayMetrics
from gateway.streams.stream_relay import StreamRelay

log = structlog.get_logger("gateway.directory")

POLL_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 3.0


class LiveDirectory:
    def __init__(self, hub: Hub, gateway_id: str, history_size: int = 50,
                 metrics: GatewayMetrics | None = None, relay_idle_after: float = 10.0) -> None:
        self.hub = hub
        self.relay_idle_after = relay_idle_after
        self.metrics = metrics or GatewayMetrics()
        self.gateway_id = gateway_id
        self.history_size = history_size
        self.live: dict[str, dict[str, Any]] = {}
        self.relays: dict[str, StreamRelay] = {}
        self.synced = asyncio.Event()
        self._incarnation: str | None = None
        self._version = -1
        self._task: asyncio.Task[None] | None = None
        self._registry: Any = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll_forever(), name="directory")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
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

    async def start_stream(self, stream_id: str) -> RegistryAnswer:
        registry = await self._get_registry()
        with self.metrics.actor_call("start_stream"):
            answer: RegistryAnswer = await registry.start_stream.remote(stream_id)
        if answer.ok and answer.data is not None:
            self._appeared(stream_id, answer.data)
        return answer

    async def stop_stream(self, stream_id: str) -> RegistryAnswer:
        registry = await self._get_registry()
        with self.metrics.actor_call("stop_stream"):
            answer: RegistryAnswer = await registry.stop_stream.remote(stream_id)
        if answer.ok:
            await self._disappeared(stream_id)
        return answer

    # ------------------------------------------------------------ polling

    async def _get_registry(self) -> Any:
        if self._registry is None:
            self._registry = await asyncio.to_thread(handles.find_registry)
            if self._registry is None:
                raise RuntimeError("the stream registry is not running: start the system with `wrencos run`")
        return self._registry

    async def _poll_forever(self) -> None:
        delay = 0.05
        while True:
            try:
                registry = await self._get_registry()
                live_set: LiveSet = await registry.poll.remote(self._incarnation, self._version, POLL_TIMEOUT_S)
            except (ray.exceptions.RayActorError, RuntimeError) as e:
                self.metrics.error("registry_poll", e)
                log.warning("registry_poll_retry", error=type(e).__name__, next_in_s=delay)
                if isinstance(e, ray.exceptions.ActorDiedError):
                    self._registry = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            self._incarnation, self._version = live_set.incarnation, live_set.version
            for stream_id in [s for s in self.live if s not in live_set.live]:
                await self._disappeared(stream_id)
            for stream_id, announcement in live_set.live.items():
                self._appeared(stream_id, announcement)
            self.synced.set()

    # ------------------------------------------------------------ changes

    def _appeared(self, stream_id: str, announcement: dict[str, Any]) -> None:
        if stream_id in self.live:
            return
        self.live[stream_id] = announcement
        relay = StreamRelay(stream_id, self.gateway_id, self.hub, self.history_size, self.metrics,
                            self.relay_idle_after)
        self.relays[stream_id] = relay
        relay.start()
        stream_data = {k: v for k, v in announcement.items() if k not in ("seq", "epoch")}
        self.hub.broadcast(encode({
            "type": "stream_started", "streamData": stream_data, "streamId": stream_id,
            "seq": announcement.get("seq"), "epoch": announcement.get("epoch"),
        }))
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
        relay = self.relays.pop(stream_id, None)
        if relay is not None:
            if relay.active:  # let its watchers get the stream's last events first
                try:
                    await asyncio.wait_for(relay.stopped.wait(), DRAIN_TIMEOUT_S)
                except TimeoutError:
                    pass
            await relay.close()
        for conn in self.hub.watchers(stream_id):
            self.hub.unwatch(conn)
        position: dict[str, object] = {}
        if relay is not None and relay.view.loaded:
            position = {"seq": relay.view.seq, "epoch": relay.view.epoch}
        self.hub.broadcast(encode({"type": "stream_stopped", "streamId": stream_id, **position}))
        log.info("stream_disappeared", stream_id=stream_id)
