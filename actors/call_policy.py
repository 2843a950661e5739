"""How every call to an actor is made: its timeout, which failures are tried
again, and what the caller sees when it fails. One policy, used by the two
clients (`StreamClient`, `RegistryClient`), which are the only code outside
the actors that calls `.remote()`.

Guarantees:

* **Every call has a timeout** (`CallSpec.timeout_s`, per method, below). A
  long poll gets the time it may wait plus `POLL_MARGIN_S`.
* **Retried: only an actor that is coming back.** Ray's `ActorUnavailableError`
  (the actor's process died and Ray is restarting it, or it is unreachable for
  a moment) and Ray failing to carry the call or its answer. Retries back off
  from `RETRY_MIN_S` to `RETRY_MAX_S` and start only while the call is younger
  than its patience (`CallSpec.patience_s`): a call returns or raises within
  patience plus one timeout. Calls made while Ray restarts an actor wait in
  Ray's queue for the new process, so most restarts cost one retry.
* **Not retried:** the actor gone for good (killed, or its creation failed),
  fenced (a newer instance of it serves the stream), a refused call (its
  queue is full), an error raised by the method itself, and a timeout (the
  call may still be running: the caller decides what to do next).
* **Safe to retry:** every method the clients call is idempotent (batches
  carry ids the actor applies once; the others read, or make a state true
  that may already be), because a call that failed may still have happened.
* **One exception family.** Callers never see an `ObjectRef` or a Ray
  exception: only `ActorCallError` subclasses, each saying how it is
  answered over REST (`status`, `code` as the body's `error`, `retry_after`)
  and over the WebSocket (`code`). Errors that are not Ray's (a bug in the
  caller) go through unchanged.
* **Observed.** Each call's latency (long polls excepted: their time is the
  wait for news) and every failed attempt, retried or not, go to a
  `CallObserver` the caller passes in (the gateway passes its metrics).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol, TypeVar

import structlog
from ray import exceptions as ray_errors

log = structlog.get_logger("actors.calls")

T = TypeVar("T")

RETRY_MIN_S = 0.05
RETRY_MAX_S = 0.2  # an actor restart takes about a second: look again soon
POLL_MARGIN_S = 10.0  # a long poll's answer may come this long after its wait (the actor loading, a busy node)


class Fenced(Exception):
    """Raised by a stream actor that a newer instance of itself has replaced
    (it found a newer journal version than its own): it serves nothing more.
    Callers see `ActorFenced` and must reach the actor the registry names now."""


# ---------------------------------------------------------------- what callers see


class ActorCallError(Exception):
    """A call to an actor brought no answer. Class attributes say how it is
    answered: over REST `status`, the body's `error` (`code`) and, where trying
    again helps, `Retry-After: retry_after`; over the WebSocket an error frame
    with `code`. `retryable`: the policy tries the call again within its patience."""

    status: ClassVar[int] = 503
    code: ClassVar[str] = "unavailable"
    retry_after: ClassVar[int | None] = 1
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, actor: str = "", method: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.actor = actor
        self.method = method

    def __reduce__(self) -> tuple[Any, ...]:  # crosses Ray intact when an actor raises it to its own caller
        return (type(self), (self.message, self.actor, self.method))

    def headers(self) -> dict[str, str]:
        """The HTTP headers of its REST answer."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class ActorUnavailable(ActorCallError):
    """The actor is restarting or unreachable, beyond the call's patience: try again shortly."""

    retryable = True


class CallTimedOut(ActorCallError):
    """No answer within the call's timeout; the call may still happen. Try again shortly."""

    code = "timeout"


class ActorFenced(ActorCallError):
    """A newer instance of the actor took over; the caller reaches it through the registry's live set."""

    code = "moved"


class ActorRefused(ActorCallError):
    """The actor's queue of calls is full: try again shortly (retrying at once would only add to it)."""

    code = "busy"


class ActorGone(ActorCallError):
    """The actor has ended for good (a stream actor: its stream is no longer live)."""

    status = 409
    code = "gone"
    retry_after = None


class ActorFailed(ActorCallError):
    """The method raised an error of its own: trying again would fail the same way."""

    status = 500
    code = "actor_error"
    retry_after = None


def classify(error: BaseException, actor: str, method: str, timeout_s: float) -> ActorCallError | None:
    """The `ActorCallError` a failed call is seen as; None for an error that is
    not about the call (not Ray's, not a timeout): a bug, to raise as it is."""
    if isinstance(error, ray_errors.RayTaskError):
        cause = getattr(error, "cause", None)
        if isinstance(cause, Fenced) or isinstance(error, Fenced):
            return ActorFenced(f"{actor} was replaced by a newer instance; try again", actor, method)
        if isinstance(cause, ActorCallError):  # the actor called another one, and that call failed
            return type(cause)(cause.message, cause.actor, cause.method)
        name = type(cause).__name__ if cause is not None else "an error"
        return ActorFailed(f"{actor} could not do {method}: it raised {name}", actor, method)
    if isinstance(error, ActorCallError):
        return error
    if isinstance(error, ray_errors.ActorUnavailableError):
        return ActorUnavailable(f"{actor} is unavailable (restarting); try again shortly", actor, method)
    if isinstance(error, (ray_errors.ActorDiedError, ray_errors.ActorUnschedulableError)):
        return ActorGone(f"{actor} has ended", actor, method)
    if isinstance(error, ray_errors.PendingCallsLimitExceeded):
        return ActorRefused(f"{actor} has too many calls waiting; try again shortly", actor, method)
    if isinstance(error, TimeoutError):  # asyncio's, or Ray's GetTimeoutError
        return CallTimedOut(f"{actor} did not answer {method} within {timeout_s:g} s; try again shortly", actor, method)
    if isinstance(error, ray_errors.RayError):  # Ray could not carry the call or its answer
        return ActorUnavailable(
            f"{actor} could not be reached ({type(error).__name__}); try again shortly", actor, method
        )
    return None


# ---------------------------------------------------------------- per-method limits


@dataclass(frozen=True, slots=True)
class CallSpec:
    """How long one attempt may take (`timeout_s`), and until how long after
    the call began a failed attempt is still tried again (`patience_s`)."""

    timeout_s: float
    patience_s: float = 30.0


# Reads answer in milliseconds once the actor is loaded; a restarted actor loads its checkpoint
# first (seconds for a big stream). Bringing an actor up (a process start under load) and
# stopping a stream (a final commit and checkpoint) take longer.
STREAM_CALLS: dict[str, CallSpec] = {
    "submit": CallSpec(30.0),  # answered once stored: waits out a short database outage
    "poll": CallSpec(POLL_MARGIN_S),  # plus the poll's own wait
    "events_since": CallSpec(5.0, 5.0),
    "snapshot": CallSpec(5.0, 5.0),  # a REST request waits for it
    "info": CallSpec(10.0),
    "warm": CallSpec(120.0),
    "ready": CallSpec(120.0),
    "adopt": CallSpec(120.0),
    "prepare": CallSpec(120.0),
    "go_live": CallSpec(120.0),
    "stop": CallSpec(60.0),
    "flush": CallSpec(15.0, 5.0),
}
# The registry answers once it has loaded (brought every live stream's actor up after a restart).
REGISTRY_CALLS: dict[str, CallSpec] = {
    "start_stream": CallSpec(200.0),  # the registry bounds a go-live: 60 s without capacity, 180 s starting slowly
    "schedule_changed": CallSpec(5.0, 5.0),
    "prewarmed": CallSpec(10.0),
    "stop_stream": CallSpec(90.0),
    "registry_poll": CallSpec(POLL_MARGIN_S),  # plus the poll's own wait
    "live": CallSpec(120.0),
    "flush_all": CallSpec(15.0, 5.0),
    "node_id": CallSpec(10.0),
    "ping_pid": CallSpec(10.0),
}


# ---------------------------------------------------------------- observing


class CallObserver(Protocol):
    """Told about every call (for metrics). Must not block or raise."""

    def call_done(self, method: str, seconds: float) -> None:
        """A call answered after `seconds` (retries included); not told for long polls."""

    def call_failed(self, method: str, error: ActorCallError) -> None:
        """One attempt failed (it may be tried again)."""


class Unobserved:
    """An observer that notes nothing."""

    def call_done(self, method: str, seconds: float) -> None:
        pass

    def call_failed(self, method: str, error: ActorCallError) -> None:
        pass


class LoggedCalls:
    """An observer that logs failed attempts (for the registry and the command line)."""

    def call_done(self, method: str, seconds: float) -> None:
        pass

    def call_failed(self, method: str, error: ActorCallError) -> None:
        log.info("actor_call_failed", actor=error.actor, method=method, error=error.code)


UNOBSERVED = Unobserved()


# ---------------------------------------------------------------- calling


async def call(
    invoke: Callable[[], Awaitable[T]],
    *,
    actor: str,
    method: str,
    spec: CallSpec,
    observer: CallObserver,
    wait_s: float | None = None,
    timeout_s: float | None = None,
) -> T:
    """Make one call by this policy: `invoke()` starts an attempt (one
    `.remote()`); `wait_s` makes it a long poll of that many seconds; `timeout_s`
    replaces the method's own timeout for this call. Returns the answer or
    raises an `ActorCallError` (see the module doc)."""
    if timeout_s is not None:
        spec = replace(spec, timeout_s=timeout_s)
    loop = asyncio.get_running_loop()
    timeout = spec.timeout_s + (wait_s or 0.0)
    began = loop.time()
    delay = RETRY_MIN_S
    while True:
        try:
            answer = await asyncio.wait_for(invoke(), timeout)
        except Exception as e:  # asyncio's TimeoutError included; cancellation goes through
            failure = classify(e, actor, method, timeout)
            if failure is None:
                raise
            observer.call_failed(method, failure)
            if failure.retryable and loop.time() + delay - began < spec.patience_s:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            raise failure from e
        if wait_s is None:
            observer.call_done(method, loop.time() - began)
        return answer
