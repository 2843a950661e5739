"""A stream's live numbers (viewers now and at the peak, likes and likers,
chat messages, pinned products, where the stream is), one way for every
caller.

While a stream is live its numbers are the projection of its events onto a
`StreamView` (`core/stream_view.py`): the relay's view when this gateway
follows the stream (what its WebSocket viewers were sent), else a view built
from the actor's snapshot, projected the same way. After the stream, and for
anything the stream does not know, the stored record's values count.

A gateway that does not follow a stream asks its actor through
`LiveNumbersCache`: one answer per stream, kept `ttl_seconds` (1 s), one
snapshot call in flight per stream shared by every request that wants it, a
few such calls at once per gateway, so a list of 100 streams asked by many
clients at once costs each actor at most one snapshot (and commit-lock turn)
per second, not one per listed stream per request.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from actors.call_policy import ActorCallError
from actors.stream_client import StreamClient
from core.stream_view import StreamView
from gateway.streams.live_directory import LiveDirectory


@dataclass(frozen=True)
class LiveNumbers:
    viewer_count: int
    peak_viewers: int
    likes: int
    liked_by: list[str]
    chat_count: int
    pinned_products: list[dict[str, Any]]
    seq: int | None
    epoch: str | None


def of_view(view: StreamView) -> dict[str, Any]:
    """The numbers a view holds (the keys of `StreamView.public`)."""
    return view.public()


def of_snapshot(stream_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    """The numbers of an actor's snapshot, projected as a relay's view projects it."""
    view = StreamView(stream_id)
    view.reset(snapshot)
    return of_view(view)


def followed(directory: LiveDirectory, stream_id: str) -> dict[str, Any] | None:
    """The numbers of the relay's view if this gateway follows the stream and its view is current."""
    relay = directory.relay(stream_id)
    if relay is not None and relay.ready.is_set():
        return of_view(relay.view)
    return None


def merged(record: dict[str, Any], live: dict[str, Any] | None) -> LiveNumbers:
    """The numbers to show: the live ones where there are some, else the stored
    record's. The peak is never below the viewers now."""
    numbers = live or {}

    def pick(key: str, default: Any) -> Any:
        return numbers.get(key, record.get(key, default))

    viewers = int(pick("viewerCount", 0))
    return LiveNumbers(
        viewer_count=viewers,
        peak_viewers=max(int(pick("peakViewers", 0)), viewers),
        likes=int(pick("likes", 0)),
        liked_by=list(numbers.get("likedBy", [])),
        chat_count=int(pick("chatCount", 0)),
        pinned_products=list(pick("pinnedProducts", [])),
        seq=numbers.get("seq"),
        epoch=numbers.get("epoch"),
    )


Numbers = dict[str, Any] | None


class LiveNumbersCache:
    """Live numbers per stream from its actor, cached. Guarantees: within
    `ttl_seconds` of an answer for a stream, no new call for it; while a call
    for a stream is in flight, every request for that stream waits for that
    call (a request that gives up does not cancel it for the others); at most
    `max_fetches` calls at once; at most `max_streams` answers kept (the
    oldest forgotten first). An actor that does not answer is remembered as
    "no numbers" (None: the caller shows the stored record) for the TTL too."""

    def __init__(
        self,
        ttl_seconds: float = 1.0,
        max_streams: int = 1024,
        max_fetches: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_streams = max_streams
        self._clock = clock
        self._answers: OrderedDict[str, tuple[float, Numbers]] = OrderedDict()  # stream -> (expires, numbers)
        self._in_flight: dict[str, asyncio.Task[Numbers]] = {}
        self._fetches = asyncio.Semaphore(max_fetches)

    async def of_actor(self, stream_id: str, actor: StreamClient) -> Numbers:
        """The numbers of the actor's snapshot (None if it brought no answer), cached."""

        async def fetch() -> Numbers:
            try:
                return of_snapshot(stream_id, await actor.snapshot())
            except ActorCallError:
                return None  # stopped since the record was read, or restarting, or slow: show the record

        return await self.get(stream_id, fetch)

    async def get(self, stream_id: str, fetch: Callable[[], Awaitable[Numbers]]) -> Numbers:
        """The cached answer for `stream_id` if fresh, else the one of the call in
        flight for it, else `fetch()`'s (then cached). An exception from `fetch`
        reaches every waiter and is not cached."""
        cached = self._answers.get(stream_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        task = self._in_flight.get(stream_id)
        if task is None:
            task = asyncio.create_task(self._fetch(stream_id, fetch))
            self._in_flight[stream_id] = task
        return await asyncio.shield(task)

    async def _fetch(self, stream_id: str, fetch: Callable[[], Awaitable[Numbers]]) -> Numbers:
        try:
            async with self._fetches:
                numbers = await fetch()
            self._answers[stream_id] = (self._clock() + self.ttl_seconds, numbers)
            self._answers.move_to_end(stream_id)
            while len(self._answers) > self.max_streams:
                self._answers.popitem(last=False)
            return numbers
        finally:
            del self._in_flight[stream_id]
