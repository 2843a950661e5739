"""Like counts are compared once the stream has settled: after the drain, a
worker keeps receiving while `stream_update`s still arrive, within a bound,
and says how long it waited and whether the stream settled."""

from __future__ import annotations

import asyncio
import queue
import time

import pytest

from loadtest import worker as worker_module
from loadtest.stats import merge_settle
from loadtest.worker import Worker, WorkerPlan

STREAM = "0123456789abcdef01234567"


def make_worker(settle: float) -> Worker:
    plan = WorkerPlan(index=0, run_id="r", viewers=[], ramp_rate=0, duration=0, drain=0, chat_rate={},
                      like_rate={STREAM: 100.0}, chat_stop_at={}, settle=settle)
    return Worker(plan, time.time_ns(), queue.Queue())


@pytest.fixture(autouse=True)
def short_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "SETTLE_QUIET_S", 0.2)


async def test_a_quiet_stream_is_settled_at_once() -> None:
    w = make_worker(settle=5)
    w.last_update_ns[STREAM] = time.time_ns() - 10**9
    await w.settle()
    assert w.settled and w.settle_s is not None and w.settle_s < 0.2


async def test_the_worker_waits_for_the_last_update() -> None:
    w = make_worker(settle=5)

    async def updates_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            w.last_update_ns[STREAM] = time.time_ns()
            await asyncio.sleep(0.02)

    feeder = asyncio.create_task(updates_for(0.5))
    await asyncio.sleep(0)
    await w.settle()
    await feeder
    assert w.settled and w.settle_s is not None and 0.5 <= w.settle_s < 2.0


async def test_the_wait_is_bounded_and_a_stream_that_never_settles_says_so() -> None:
    w = make_worker(settle=0.4)
    stop = False

    async def updates() -> None:
        while not stop:
            w.last_update_ns[STREAM] = time.time_ns()
            await asyncio.sleep(0.02)

    feeder = asyncio.create_task(updates())
    await asyncio.sleep(0)
    await w.settle()
    stop = True
    await feeder
    assert not w.settled and w.settle_s is not None and 0.4 <= w.settle_s < 1.0


def test_merging_keeps_the_slowest_wait_and_settled_only_if_all_settled() -> None:
    mine = {"settleSeconds": 0.5, "settled": True}
    merge_settle(mine, {"settleSeconds": 2.0, "settled": False})
    assert mine == {"settleSeconds": 2.0, "settled": False}
    none = {"settleSeconds": None, "settled": True}
    merge_settle(none, {})
    assert none == {"settleSeconds": None, "settled": True}
