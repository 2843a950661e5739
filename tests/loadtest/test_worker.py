"""One worker process (`loadtest.worker`). Like counts are compared once the stream
has settled: after the drain, a worker keeps receiving while `stream_update`s still
arrive, within a bound, and says how long it waited and whether the stream settled.
At its end it reports its viewers' windows and each stream's like figures."""

from __future__ import annotations

import asyncio
import queue
import time

import pytest

from loadtest import worker as worker_module
from loadtest.plan import ViewerSpec, WorkerPlan
from loadtest.shipping import Window
from loadtest.stats import merge_settle
from loadtest.worker import Worker

STREAM = "0123456789abcdef01234567"
S = 1_000_000_000


def make_worker(settle: float) -> Worker:
    plan = WorkerPlan(
        index=0,
        run_id="r",
        viewers=[],
        ramp_rate=0,
        duration=0,
        drain=0,
        chat_rate={},
        like_rate={STREAM: 100.0},
        chat_stop_at={},
        settle=settle,
    )
    return Worker(plan, time.time_ns(), queue.Queue())


@pytest.fixture(autouse=True)
def short_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "SETTLE_QUIET_S", 0.2)


async def test_a_quiet_stream_is_settled_at_once() -> None:
    w = make_worker(settle=5)
    w.crowd.last_update_ns[STREAM] = time.time_ns() - 10**9
    await w.settle()
    assert w.settled and w.settle_s is not None and w.settle_s < 0.2


async def test_the_worker_waits_for_the_last_update() -> None:
    w = make_worker(settle=5)

    async def updates_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            w.crowd.last_update_ns[STREAM] = time.time_ns()
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
            w.crowd.last_update_ns[STREAM] = time.time_ns()
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


def test_the_end_report_adds_up_the_viewers_of_each_stream() -> None:
    other = "76543210fedcba9876543210"
    specs = [ViewerSpec(STREAM, "ws://x", "a"), ViewerSpec(STREAM, "ws://x", "b"), ViewerSpec(other, "ws://x", "c")]
    plan = WorkerPlan(
        index=0,
        run_id="r",
        viewers=specs,
        ramp_rate=0,
        duration=0,
        drain=0,
        chat_rate={},
        like_rate={},
        chat_stop_at={},
    )
    start = time.time_ns() - 10 * S
    w = Worker(plan, start, queue.Queue())
    a, b, c = w.viewers
    a.windows = [Window(start, start + 2 * S)]
    a.toggles, a.updates, a.initial_likes = 3, 4, 5
    a.last_likes, a.last_likes_seq, a.last_viewer_count = 10, 7, 2
    b.windows = [Window(start + S, start + 100 * S)]  # still open at the end: counted up to now
    b.toggles, b.updates = 2, 1
    b.last_likes, b.last_likes_seq, b.last_viewer_count = 11, 9, 3
    c.toggles = 1
    w.crowd.pending_acks["0-1"] = start
    w.crowd.batches = 4
    end = w.final()
    mine = end["streams"][STREAM]
    assert 10.5 < mine["viewerSeconds"] < 12
    assert {k: v for k, v in mine.items() if k != "viewerSeconds"} == {
        "toggles": 5,
        "likedSessions": 1,
        "updates": 5,
        "lastLikes": 11,
        "lastLikesSeq": 9,
        "lastViewerCount": 3,
        "initialLikes": 5,
        "settleSeconds": None,
        "settled": True,
    }
    assert end["streams"][other]["likedSessions"] == 1 and end["streams"][other]["lastLikes"] is None
    assert end["windows"] == {STREAM: [Window(start, start + 2 * S), Window(start + S, start + 100 * S)], other: []}
    assert end["unacked"] == 1 and end["batches"] == 4
