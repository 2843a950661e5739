"""The spare pool: it grows under a burst of go-lives, starts spares in
parallel and hands each waiting go-live the next one up, and shrinks back
when go-lives stop. No Ray: spares are plain objects started by a fake."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from actors import registry_actor
from actors.registry_actor import SparePool
from core.spare_plan import SparePlan


class TestSparePlan:
    def test_holds_the_minimum_when_nothing_goes_live(self) -> None:
        plan = SparePlan(2, 8)
        assert plan.target(100.0) == 2

    def test_grows_with_the_go_live_rate_up_to_the_maximum(self) -> None:
        plan = SparePlan(2, 8, start_s=1.0)
        for i in range(10):  # 1 a second over the window: 1 × 2 × 1 s
            plan.went_live(100.0 + i)
        assert plan.target(109.5) == 2
        for i in range(20):  # a burst: 30 in the window
            plan.went_live(110.0 + i * 0.05)
        assert plan.target(111.0) == 6  # 3/s × 2 × 1 s
        plan.spare_started(5.0)  # starts got slow (a loaded machine): cover more
        assert plan.target(111.0) == 8  # capped

    def test_back_to_the_minimum_once_idle(self) -> None:
        plan = SparePlan(2, 8, idle_s=60.0, start_s=1.0)
        for i in range(30):
            plan.went_live(100.0 + i * 0.1)
        assert plan.target(103.0) == 6
        assert plan.target(103.0 + 60.0) == 2

    def test_a_pool_whose_maximum_is_below_its_minimum_holds_the_minimum(self) -> None:
        assert SparePlan(3, 1).maximum == 3


class FakeStarts:
    """Starts spares that come up when the test says (`finish`), or at once."""

    def __init__(self, instant: bool = False) -> None:
        self.instant = instant
        self.names = itertools.count(1)
        self.pending: list[asyncio.Future[None]] = []
        self.started = 0
        self.running = 0
        self.most_at_once = 0
        self.killed: list[Any] = []

    async def start(self) -> Any:
        self.started += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        name = f"spare-{next(self.names)}"
        if not self.instant:
            gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.pending.append(gate)
            await gate
        self.running -= 1
        return name

    def finish(self, n: int = 1) -> None:
        for gate in [g for g in self.pending if not g.done()][:n]:
            gate.set_result(None)

    def kill(self, spare: Any) -> None:
        self.killed.append(spare)


@pytest.fixture
def one_second_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fakes start in no time: keep the plan's start time at 1 s, as if measured."""
    monkeypatch.setattr(SparePlan, "spare_started", lambda self, seconds: None)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_quiet_pool_fills_to_its_minimum_one_start_per_slot() -> None:
    starts = FakeStarts(instant=True)
    pool = SparePool(SparePlan(2, 8), starts.start, starts.kill, parallel=2)
    pool.replenish()
    await settle()
    assert pool.spares == ["spare-1", "spare-2"] and starts.started == 2


async def test_a_burst_grows_the_pool_and_starts_in_parallel_within_the_limit(one_second_starts: None) -> None:
    starts = FakeStarts()
    pool = SparePool(SparePlan(2, 8, start_s=1.0), starts.start, starts.kill, parallel=3)
    pool.replenish()
    await settle()
    starts.finish(2)
    await settle()
    assert len(pool.spares) == 2
    takers = [asyncio.create_task(pool.take()) for _ in range(12)]  # 12 go-lives at once
    await settle()
    assert starts.running == 3 and starts.most_at_once == 3  # never more than `parallel` at a time
    while not all(t.done() for t in takers):
        starts.finish(3)
        await settle()
    got = [t.result() for t in takers]
    assert len(set(got)) == 12 and None not in got  # each got its own spare
    assert pool.plan.target(time.monotonic()) > 2  # the rate grew the target
    starts.finish(100)
    await settle()
    assert len(pool.spares) + pool.starting >= pool.plan.target(time.monotonic())


async def test_a_waiting_go_live_gets_the_next_spare_up_not_a_start_of_its_own() -> None:
    starts = FakeStarts()
    pool = SparePool(SparePlan(1, 4, start_s=1.0), starts.start, starts.kill, parallel=2)
    pool.replenish()  # one spare starting
    await settle()
    taker = asyncio.create_task(pool.take())
    await settle()
    assert starts.started == 2  # the waiter asked for one more, in parallel
    starts.finish(1)  # the first start (begun before the go-live) comes up: it goes to the waiter
    await settle()
    assert taker.done() and taker.result() == "spare-1"


async def test_the_pool_shrinks_back_once_go_lives_stop(one_second_starts: None) -> None:
    starts = FakeStarts(instant=True)
    pool = SparePool(SparePlan(2, 8, idle_s=0.3, start_s=1.0), starts.start, starts.kill, parallel=4)
    pool.replenish()
    await settle()
    for _ in range(25):  # 2.5 a second over the window: 5 spares
        await pool.take()
        await settle()
    assert len(pool.spares) > 2
    grown = len(pool.spares)
    await asyncio.sleep(0.5)
    await settle()
    assert len(pool.spares) == 2 and len(starts.killed) == grown - 2


async def test_a_failed_start_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_actor.asyncio, "sleep", _no_sleep)
    calls = 0

    async def flaky() -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("worker died")
        return f"spare-{calls}"

    pool = SparePool(SparePlan(1, 1), flaky, lambda s: None, parallel=1)
    pool.replenish()
    await settle()
    assert pool.spares == ["spare-2"]


async def test_a_pool_with_maximum_zero_is_off() -> None:
    starts = FakeStarts(instant=True)
    pool = SparePool(SparePlan(0, 0), starts.start, starts.kill)
    assert await pool.take() is None and starts.started == 0


async def test_a_go_live_that_gives_up_waiting_gets_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SparePool, "WAIT_S", 0.05)
    starts = FakeStarts()
    pool = SparePool(SparePlan(0, 2), starts.start, starts.kill, parallel=1)
    assert await pool.take() is None
    starts.finish(1)  # the spare that comes up later stays in the pool
    await settle()
    assert pool.spares == ["spare-1"]


async def test_a_go_live_waits_for_a_spare_as_long_as_it_says() -> None:
    starts = FakeStarts()
    pool = SparePool(SparePlan(0, 2), starts.start, starts.kill, parallel=1)
    began = time.monotonic()
    assert await pool.take(wait_s=0.05) is None  # not `WAIT_S` (30 s): the go-live's own share of its timeout
    assert time.monotonic() - began < 5


async def test_a_reservation_claims_only_spares_beyond_the_minimum() -> None:
    starts = FakeStarts(instant=True)
    pool = SparePool(SparePlan(1, 4), starts.start, starts.kill, parallel=2)
    pool.add("orphan-1")
    assert pool.claim() is None  # the minimum stays for unscheduled go-lives
    pool.add("orphan-2")
    assert pool.claim() == "orphan-2" and pool.spares == ["orphan-1"]
    assert pool.plan.last_start is None, "a claim is not a go-live: the plan's rate is untouched"


_real_sleep = asyncio.sleep


async def _no_sleep(seconds: float) -> None:
    await _real_sleep(0)
