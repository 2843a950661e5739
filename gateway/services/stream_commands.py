"""How a service hands a command to a live stream, and reads its answer.

A command goes through the stream's relay from this gateway's live directory
(`gateway/streams/`): commands from this gateway reach the stream in the order
they were queued, and a command is answered once the stream has stored it
(journal first, then its event to viewers). A service queues and returns a
`Queued`: the caller decides whether to wait for the answer (REST does) or to
be called back and go on with its next frame at once (the WebSocket does).

A REST caller waits at most `STORED_WAIT_S` for that answer (`answer_within`):
while the stream's storage is slow or down, its commands stay queued (and are
applied, once, when it answers), but the caller is told so at once instead of
being held for as long as the outage lasts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from core.results import Result
from gateway.services.errors import NOT_FOUND, NOT_LIVE, REJECTED, UNAVAILABLE, ServiceError
from gateway.streams.live_directory import LiveDirectory
from gateway.streams.stream_relay import StreamRelay
from persistence.streams import StreamStore

T = TypeVar("T")

# How long a REST caller waits for the stream to store its command: the database's own time budget
# (DatabaseConfig.timeout_ms, 5 s), so a stream waiting out a storage outage costs a REST client no
# more than a direct database call would.
STORED_WAIT_S = 5.0
NOT_YET_STORED_RETRY_AFTER_S = 2


async def answer_within(future: asyncio.Future[Result], timeout_s: float = STORED_WAIT_S) -> Result | None:
    """The stream's answer to a queued command, or None if it has not come within `timeout_s`.
    Either way the command stays queued: the future is not cancelled, and the stream applies it
    once when it can store it (or refuses it then)."""
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout_s)
    except TimeoutError:
        return None


def not_yet_stored(timeout_s: float = STORED_WAIT_S) -> ServiceError:
    """The refusal for a command the stream has not stored within `timeout_s` (503 over REST)."""
    return ServiceError(
        UNAVAILABLE,
        f"The stream has not stored this within {timeout_s:g} s (its storage is slow or restarting). It stays "
        "queued and is applied once stored; repeating it is safe. Try again shortly",
        retry_after=NOT_YET_STORED_RETRY_AFTER_S,
    )


def refusal(result: Result, default: str = "the stream refused this") -> ServiceError:
    """A stream's refusal as a `ServiceError`: the stream's code (else `rejected`),
    its message, when to try again (`retryAfter`), and whatever other detail it gave."""
    data = dict(result.data or {})
    code = data.pop("code", None) or REJECTED
    retry_after = data.pop("retryAfter", None)
    return ServiceError(
        code, result.error or default, retry_after=retry_after if isinstance(retry_after, int) else None, **data
    )


class Queued(Generic[T]):
    """A command queued to a stream. `stored()` waits for the stream to store it
    and returns the service's plain result, or raises `ServiceError` if the
    stream refused it; `when_stored` calls back instead of waiting."""

    def __init__(
        self,
        future: asyncio.Future[Result],
        outcome: Callable[[Result], T],
        refused: Callable[[Result], ServiceError] = refusal,
    ) -> None:
        self._future = future
        self._outcome = outcome
        self._refused = refused

    def _settle(self, result: Result) -> T:
        if not result.ok:
            raise self._refused(result)
        return self._outcome(result)

    async def stored(self, timeout_s: float = STORED_WAIT_S) -> T:
        """The result once stored; `not_yet_stored` (UNAVAILABLE) if that takes over `timeout_s`."""
        result = await answer_within(self._future, timeout_s)
        if result is None:
            raise not_yet_stored(timeout_s)
        return self._settle(result)

    def when_stored(
        self, on_refused: Callable[[ServiceError], None], on_stored: Callable[[T], None] | None = None
    ) -> None:
        """Call `on_stored` (if given) with the result once stored, or `on_refused`
        with the refusal. Runs from the event loop; never raises into it."""

        def done(fut: asyncio.Future[Result]) -> None:
            if fut.cancelled():
                return
            try:
                value = self._settle(fut.result())
            except ServiceError as e:
                on_refused(e)
                return
            if on_stored is not None:
                on_stored(value)

        self._future.add_done_callback(done)


class LiveStreams:
    """Finds the relay of a live stream, or says why there is none."""

    def __init__(self, directory: LiveDirectory, streams: StreamStore) -> None:
        self.directory = directory
        self.streams = streams

    async def relay(self, stream_id: str) -> StreamRelay:
        """The relay of `stream_id`. Without an await when the stream is live here
        (so a caller's commands stay in the order it queues them); else
        `not_found` if no such stream is stored, `not_live` if it is not live."""
        relay = self.directory.relay(stream_id)
        if relay is not None:
            return relay
        if await self.streams.get(stream_id) is None:
            raise ServiceError(NOT_FOUND, f"Stream {stream_id} does not exist")
        raise ServiceError(NOT_LIVE, "This stream is not live")
