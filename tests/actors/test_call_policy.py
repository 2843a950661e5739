"""The call policy without a cluster: how each failure is seen, how each is
answered over REST and the WebSocket, and which are tried again (fakes stand
for the `.remote()` of an actor; real Ray is `test_stream_client.py`)."""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from ray import exceptions as ray_errors

from actors import call_policy
from actors.call_policy import (
    ActorCallError,
    ActorFailed,
    ActorFenced,
    ActorGone,
    ActorRefused,
    ActorUnavailable,
    CallSpec,
    CallTimedOut,
    Fenced,
    call,
    classify,
)
from gateway import errors


def task_error(cause: Exception) -> Exception:
    """What awaiting a call raises when the actor's method raised `cause`."""
    return ray_errors.RayTaskError("poll", "Traceback ...", cause).as_instanceof_cause()


def unavailable() -> Exception:
    return ray_errors.ActorUnavailableError("restarting", None)


class Seen:
    """A `CallObserver` that keeps what it is told."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.failed: list[tuple[str, str]] = []

    def call_done(self, method: str, seconds: float) -> None:
        self.done.append(method)

    def call_failed(self, method: str, error: ActorCallError) -> None:
        self.failed.append((method, error.code))


def attempts(*outcomes: Any) -> tuple[Callable[[], Awaitable[Any]], list[int]]:
    """An `invoke` that raises or returns each outcome in turn, and how many times it was called."""
    count = [0]

    def invoke() -> Awaitable[Any]:
        outcome = outcomes[min(count[0], len(outcomes) - 1)]
        count[0] += 1

        async def attempt() -> Any:
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        return attempt()

    return invoke, count


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("error", "seen_as"),
    [
        (unavailable(), ActorUnavailable),
        (ray_errors.ActorDiedError(), ActorGone),
        (task_error(Fenced("newer instance")), ActorFenced),
        (task_error(ValueError("bad")), ActorFailed),
        (TimeoutError(), CallTimedOut),
        (ray_errors.GetTimeoutError("late"), CallTimedOut),
        (ray_errors.PendingCallsLimitExceeded("full"), ActorRefused),
        (ray_errors.ObjectLostError("obj", None, "call site"), ActorUnavailable),
        # The registry's call to a stream actor failed: its caller sees that failure, not an application error.
        (task_error(ActorUnavailable("stream actor restarting", "the actor of stream s", "ready")), ActorUnavailable),
    ],
)
def test_each_failure_is_seen_as_one_error_of_the_family(error: Exception, seen_as: type[ActorCallError]) -> None:
    seen = classify(error, "the actor of stream s", "poll", 5.0)
    assert type(seen) is seen_as
    assert not isinstance(seen, ray_errors.RayError)


def test_only_an_actor_coming_back_is_tried_again() -> None:
    assert [
        c for c in (ActorUnavailable, CallTimedOut, ActorFenced, ActorRefused, ActorGone, ActorFailed) if c.retryable
    ] == [ActorUnavailable]


def test_an_error_that_is_not_about_the_call_is_not_classified() -> None:
    assert classify(KeyError("bug"), "a", "poll", 1.0) is None


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (ActorUnavailable("restarting"), 503, "unavailable", "1"),
        (CallTimedOut("slow"), 503, "timeout", "1"),
        (ActorFenced("moved"), 503, "moved", "1"),
        (ActorRefused("full"), 503, "busy", "1"),
        (ActorGone("ended"), 409, "gone", None),
        (ActorFailed("raised"), 500, "actor_error", None),
    ],
)
async def test_each_error_is_answered_over_rest_with_its_status_code_and_retry_after(
    error: ActorCallError, status: int, code: str, retry_after: str | None
) -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/call")
    async def failing() -> None:
        raise error

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        r = await client.get("/call")
    assert r.status_code == status
    assert r.json() == {"error": code, "message": error.message, "status": status}
    assert r.headers.get("Retry-After") == retry_after
    assert error.code == code  # the WebSocket error frame's `code`


def test_an_error_crosses_ray_intact() -> None:
    e = pickle.loads(pickle.dumps(ActorUnavailable("restarting", "the stream registry", "start_stream")))
    assert (type(e), e.message, e.actor, e.method) == (
        ActorUnavailable,
        "restarting",
        "the stream registry",
        "start_stream",
    )


# ---------------------------------------------------------------- retries


async def test_an_unavailable_actor_is_tried_again_until_it_answers() -> None:
    seen = Seen()
    invoke, count = attempts(unavailable(), unavailable(), "answer")
    assert await call(invoke, actor="a", method="snapshot", spec=CallSpec(1.0, 5.0), observer=seen) == "answer"
    assert count[0] == 3
    assert seen.failed == [("snapshot", "unavailable")] * 2 and seen.done == ["snapshot"]


async def test_patience_bounds_the_retries() -> None:
    invoke, count = attempts(unavailable())
    began = time.monotonic()
    with pytest.raises(ActorUnavailable) as raised:
        await call(invoke, actor="a", method="snapshot", spec=CallSpec(1.0, 0.3), observer=Seen())
    assert time.monotonic() - began < 0.3 + call_policy.RETRY_MAX_S + 0.2
    assert 2 <= count[0] < 10
    assert isinstance(raised.value.__cause__, ray_errors.ActorUnavailableError)


@pytest.mark.parametrize("error", [ray_errors.ActorDiedError(), task_error(Fenced("newer")), task_error(ValueError())])
async def test_gone_fenced_and_failed_calls_are_not_tried_again(error: Exception) -> None:
    seen = Seen()
    invoke, count = attempts(error, "answer")
    with pytest.raises(ActorCallError):
        await call(invoke, actor="a", method="submit", spec=CallSpec(1.0, 30.0), observer=seen)
    assert count[0] == 1 and len(seen.failed) == 1 and seen.done == []


async def test_a_call_that_outlasts_its_timeout_raises_the_timeout_error_and_is_not_repeated() -> None:
    count = [0]

    def invoke() -> Awaitable[str]:
        count[0] += 1
        return asyncio.sleep(10, "late")

    seen = Seen()
    began = time.monotonic()
    with pytest.raises(CallTimedOut):
        await call(invoke, actor="a", method="events_since", spec=CallSpec(0.2, 30.0), observer=seen)
    assert 0.2 <= time.monotonic() - began < 1.0
    assert count[0] == 1 and seen.failed == [("events_since", "timeout")]


async def test_a_long_poll_gets_its_wait_on_top_of_the_timeout_and_no_latency_is_reported() -> None:
    seen = Seen()
    answer = await call(
        lambda: asyncio.sleep(0.3, "events"), actor="a", method="poll", spec=CallSpec(0.1), observer=seen, wait_s=0.5
    )
    assert answer == "events" and seen.done == []


async def test_a_bug_in_the_call_goes_through_unchanged() -> None:
    invoke, count = attempts(KeyError("bug"))
    with pytest.raises(KeyError):
        await call(invoke, actor="a", method="poll", spec=CallSpec(1.0), observer=Seen())
    assert count[0] == 1
