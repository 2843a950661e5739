"""How long a REST caller waits for a queued command: the stream's answer when it
comes in time; a clear, retryable refusal when it does not, with the command
still queued (its future not cancelled) for the stream to apply."""

from __future__ import annotations

import asyncio

import pytest

from core.results import Result
from gateway.services.errors import UNAVAILABLE, ServiceError
from gateway.services.stream_commands import Queued, answer_within


async def test_an_answer_in_time_is_returned() -> None:
    fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.01, fut.set_result, Result(ok=True, data={"likes": 3}))
    assert await answer_within(fut, 5) == Result(ok=True, data={"likes": 3})


async def test_no_answer_in_time_is_none_and_the_command_stays_queued() -> None:
    fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
    assert await answer_within(fut, 0.05) is None
    assert not fut.cancelled()  # the relay still holds it: the stream applies it when it can
    fut.set_result(Result(ok=True))  # ...and answers it then


async def test_stored_past_its_wait_refuses_as_unavailable_with_retry_after() -> None:
    fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
    queued: Queued[str] = Queued(fut, lambda r: "done")
    with pytest.raises(ServiceError) as refused:
        await queued.stored(timeout_s=0.05)
    assert refused.value.code == UNAVAILABLE and refused.value.retry_after is not None
    assert "0.05 s" in refused.value.message and "queued" in refused.value.message
    assert not fut.cancelled()


async def test_stored_in_time_gives_the_outcome_or_the_streams_refusal() -> None:
    loop = asyncio.get_running_loop()
    ok: asyncio.Future[Result] = loop.create_future()
    ok.set_result(Result(ok=True))
    assert await Queued(ok, lambda r: "done").stored(timeout_s=1) == "done"
    no: asyncio.Future[Result] = loop.create_future()
    no.set_result(Result.rejected("slow down", "slow_mode", retryAfter=4))
    with pytest.raises(ServiceError) as refused:
        await Queued(no, lambda r: "done").stored(timeout_s=1)
    assert (refused.value.code, refused.value.retry_after) == ("slow_mode", 4)
