"""Password hashing and verification off the event loop, in a bounded pool.

Argon2 costs tens of milliseconds of CPU per call. Run on the event loop, a
few concurrent logins stall every socket of the gateway; so each call runs in
one of `workers` threads (Argon2 releases the GIL, so the loop keeps serving
meanwhile). At most `max_waiting` calls wait for a thread: one more is refused
at once with `PoolBusy` (answered 429 with `Retry-After`), so a flood of
logins never builds an unbounded backlog of work or memory.

Guarantees: at no time are more than `workers + max_waiting` calls accepted
and not yet finished (a caller that gives up, e.g. a client that hangs up,
frees its place when its thread finishes or, if it never started, at once).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from gateway.security.credentials import dummy_hash, hash_password, verify_login

T = TypeVar("T")


class PoolBusy(Exception):
    """Every worker is busy and the queue is full; come back in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"password pool busy: retry in {retry_after} s")
        self.retry_after = retry_after


class PasswordPool:
    """`workers` threads for hashing and verifying; at most `max_waiting` calls queued."""

    def __init__(
        self,
        workers: int = 2,
        max_waiting: int = 16,
        retry_after: int = 1,
        hasher: Callable[[str], str] = hash_password,
        verifier: Callable[[str, str | None], bool] = verify_login,
    ) -> None:
        if workers < 1 or max_waiting < 0:
            raise ValueError("a password pool needs at least one worker and a queue of 0 or more")
        self.workers = workers
        self.max_waiting = max_waiting
        self.retry_after = max(1, retry_after)
        self._hasher = hasher
        self._verifier = verifier
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="password")
        self._lock = threading.Lock()  # the count is freed from worker threads
        self._accepted = 0  # running or waiting
        self.refused = 0
        if verifier is verify_login:
            self._executor.submit(dummy_hash)  # made now, so the first unknown login costs no more than others

    @property
    def accepted(self) -> int:
        """Calls running or waiting for a worker now."""
        return self._accepted

    async def hash(self, password: str) -> str:
        """The Argon2 hash of `password`; raises `PoolBusy` when the queue is full."""
        return await self._run(self._hasher, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Whether `password` matches `password_hash`; with `None` (no such account),
        False at the cost of a real verification. Raises `PoolBusy` when the queue is full."""
        return await self._run(self._verifier, password, password_hash)

    async def _run(self, fn: Callable[..., T], *args: str | None) -> T:
        with self._lock:
            if self._accepted >= self.workers + self.max_waiting:
                self.refused += 1
                raise PoolBusy(self.retry_after)
            self._accepted += 1
        try:
            future: Future[T] = self._executor.submit(fn, *args)
        except BaseException:
            self._release()
            raise
        # Freed when the work is really over (or cancelled before it started), not when
        # the awaiting request goes away: the bound holds for threads, not just awaits.
        future.add_done_callback(lambda _: self._release())
        return await asyncio.wrap_future(future)

    def _release(self) -> None:
        with self._lock:
            self._accepted -= 1

    def close(self) -> None:
        """Stop the threads; queued calls are cancelled, a running one finishes."""
        self._executor.shutdown(wait=False, cancel_futures=True)
