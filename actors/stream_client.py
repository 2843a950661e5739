"""`StreamClient`: the one way to call a stream actor from outside it.

Gateways, the registry, the command line and tests reach a stream's actor
only through this class; every call follows `actors.call_policy` (a timeout,
retries while the actor restarts, one exception family, metrics to the
observer). The actor's handle comes from whoever knows which actor serves the
stream: the registry's live set for a gateway (`LiveSet.actors`), the
registry itself for the actors it starts.

Every method here is idempotent on the actor's side (see each method of
`StreamActor`), so the policy may send it again after a failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ray.actor import ActorHandle

from actors.call_policy import STREAM_CALLS, UNOBSERVED, CallObserver, call
from core.commands import Command
from core.poll import PollResult
from core.results import Result

T = TypeVar("T")


class StreamClient:
    def __init__(self, handle: ActorHandle, stream_id: str | None, observer: CallObserver = UNOBSERVED) -> None:
        """`stream_id` None: a spare (it serves the stream it adopts)."""
        self.handle = handle
        self.stream_id = stream_id
        self.observer = observer
        self._name = f"the actor of stream {stream_id}" if stream_id else "a spare stream actor"

    def same_actor(self, handle: ActorHandle) -> bool:
        """Whether `handle` names the actor this client calls."""
        return bool(self.handle == handle)

    async def _call(
        self,
        method: str,
        invoke: Callable[[], Awaitable[T]],
        wait_s: float | None = None,
        timeout_s: float | None = None,
    ) -> T:
        return await call(
            invoke,
            actor=self._name,
            method=method,
            spec=STREAM_CALLS[method],
            observer=self.observer,
            wait_s=wait_s,
            timeout_s=timeout_s,
        )

    # ------------------------------------------------------------ gateways

    async def submit(self, gateway_id: str, batch_id: str, commands: list[Command]) -> list[Result]:
        """One `Result` per command, once the batch is stored (applied once per `batch_id`)."""
        h = self.handle
        return await self._call("submit", lambda: h.submit.remote(gateway_id, batch_id, commands))

    async def poll(self, gateway_id: str, after_seq: int, epoch: str | None, wait_s: float) -> PollResult:
        """The events after `after_seq` of `epoch`, waiting up to `wait_s` for some (a long poll)."""
        h = self.handle
        return await self._call("poll", lambda: h.poll.remote(gateway_id, after_seq, epoch, wait_s), wait_s=wait_s)

    async def events_since(self, after_seq: int, epoch: str) -> list[tuple[int, str]] | None:
        """The published events after `after_seq`, or None if the actor no longer holds them all."""
        h = self.handle
        return await self._call("events_since", lambda: h.events_since.remote(after_seq, epoch))

    async def snapshot(self) -> dict[str, Any]:
        """The published state (stream data, recent chat, position, stats)."""
        h = self.handle
        return await self._call("snapshot", lambda: h.snapshot.remote())

    async def info(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Process and health facts (for operators and tests)."""
        h = self.handle
        return await self._call("info", lambda: h.info.remote(), timeout_s=timeout_s)

    # ------------------------------------------------------------ the registry

    async def warm(self) -> bool:
        """Answers once the actor's process is up (a spare ready to adopt a stream)."""
        h = self.handle
        return await self._call("warm", lambda: h.warm.remote())

    async def ready(self) -> dict[str, Any]:
        """The snapshot, once the actor has loaded its stream."""
        h = self.handle
        return await self._call("ready", lambda: h.ready.remote())

    async def adopt(self, stream_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        """A spare serves `stream_id` from now on (and after its restarts); its snapshot once loaded."""
        h = self.handle
        return await self._call("adopt", lambda: h.adopt.remote(stream_id, meta))

    async def prepare(self, stream_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        """A spare loads `stream_id` ahead of its go-live (not live: no announcement, calls wait); its snapshot."""
        h = self.handle
        return await self._call("prepare", lambda: h.prepare.remote(stream_id, meta))

    async def go_live(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The prepared (or serving) stream is live with `meta`; its snapshot. Idempotent."""
        h = self.handle
        return await self._call("go_live", lambda: h.go_live.remote(meta))

    async def stop(self) -> dict[str, Any]:
        """End the stream: its final numbers, once stored."""
        h = self.handle
        return await self._call("stop", lambda: h.stop.remote())

    async def flush(self) -> None:
        """Store and publish what is pending now, and write a checkpoint."""
        h = self.handle
        await self._call("flush", lambda: h.flush.remote())
