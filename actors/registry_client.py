"""`RegistryClient`: the one way to call the cluster's `StreamRegistry`.

Every call follows `actors.call_policy`. The registry is the one actor found
by name (`find`); every stream actor is found through it: its live set names
the actor serving each live stream (`LiveSet.actors`), and `stream_client`
wraps one in a `StreamClient`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import ray
from ray.actor import ActorHandle

from actors.call_policy import REGISTRY_CALLS, UNOBSERVED, CallObserver, call
from actors.placement import REGISTRY_NAME
from actors.stream_client import StreamClient
from core.live_set import LiveSet, RegistryAnswer

T = TypeVar("T")

NAME = "the stream registry"


class RegistryClient:
    def __init__(self, handle: ActorHandle, observer: CallObserver = UNOBSERVED) -> None:
        self.handle = handle
        self.observer = observer

    @classmethod
    def find(cls, observer: CallObserver = UNOBSERVED) -> RegistryClient | None:
        """The registry of this Ray namespace, or None if it is not running.
        Asks Ray's control store (a blocking round trip of about a millisecond):
        from an event loop, call it in a thread."""
        try:
            return cls(ray.get_actor(REGISTRY_NAME), observer)
        except ValueError:
            return None

    async def _call(
        self,
        method: str,
        invoke: Callable[[], Awaitable[T]],
        wait_s: float | None = None,
        timeout_s: float | None = None,
    ) -> T:
        return await call(
            invoke,
            actor=NAME,
            method=method,
            spec=REGISTRY_CALLS[method],
            observer=self.observer,
            wait_s=wait_s,
            timeout_s=timeout_s,
        )

    async def start_stream(self, stream_id: str, wait_s: float | None = None) -> RegistryAnswer:
        """Make the stream live; the answer names its actor (`RegistryAnswer.actor`). Idempotent.
        With `wait_s`, a go-live still going after that long answers `pending` (it goes on)."""
        h = self.handle
        return await self._call("start_stream", lambda: h.start_stream.remote(stream_id, wait_s))

    async def schedule_changed(self, stream_id: str) -> None:
        """Tell the registry a stream's schedule changed (its reserved actor is started or ended)."""
        h = self.handle
        await self._call("schedule_changed", lambda: h.schedule_changed.remote(stream_id))

    async def prewarmed(self) -> dict[str, ActorHandle]:
        """Stream id -> the actor reserved for that scheduled stream, up and not yet adopted."""
        h = self.handle
        return await self._call("prewarmed", lambda: h.prewarmed.remote())

    async def stop_stream(self, stream_id: str) -> RegistryAnswer:
        """End the stream (its final state stored, its actor gone). Idempotent."""
        h = self.handle
        return await self._call("stop_stream", lambda: h.stop_stream.remote(stream_id))

    async def poll(self, incarnation: str | None, version: int, wait_s: float) -> LiveSet:
        """The live set once it differs from (incarnation, version), or after `wait_s` (a long poll)."""
        h = self.handle
        return await self._call("registry_poll", lambda: h.poll.remote(incarnation, version, wait_s), wait_s=wait_s)

    async def live(self, timeout_s: float | None = None) -> LiveSet:
        """The live set now (once the registry has loaded)."""
        h = self.handle
        return await self._call("live", lambda: h.live.remote(), timeout_s=timeout_s)

    async def flush_all(self, timeout_s: float | None = None) -> int:
        """Ask every live stream to store what it holds; how many did."""
        h = self.handle
        return await self._call("flush_all", lambda: h.flush_all.remote(), timeout_s=timeout_s)

    async def node_id(self, timeout_s: float | None = None) -> str:
        """The Ray node the registry runs on."""
        h = self.handle
        return await self._call("node_id", lambda: h.node_id.remote(), timeout_s=timeout_s)

    async def ping_pid(self) -> int:
        """The registry's process id (for failure tests)."""
        h = self.handle
        return await self._call("ping_pid", lambda: h.ping_pid.remote())

    async def stream_client(self, stream_id: str, observer: CallObserver | None = None) -> StreamClient | None:
        """A client of the actor serving `stream_id`, as the live set names it; None if it is not live."""
        handle = (await self.live()).actors.get(stream_id)
        if handle is None:
            return None
        return StreamClient(handle, stream_id, observer or self.observer)
