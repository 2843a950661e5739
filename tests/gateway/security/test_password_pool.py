"""The password pool: work runs in its threads, never on the event loop, and
no more than `workers + max_waiting` calls are accepted at once (the next one
is refused at once with `PoolBusy`). Also the dummy hash an unknown login is
verified against: same Argon2 parameters as a real account's."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from gateway.security.credentials import dummy_hash, hash_password, verify_login, verify_password
from gateway.security.password_pool import PasswordPool, PoolBusy


class Gate:
    """A stand-in for Argon2 that blocks its worker thread until opened."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.threads: list[threading.Thread] = []

    def hasher(self, password: str) -> str:
        self.threads.append(threading.current_thread())
        assert self.open.wait(10), "the test never opened the gate"
        return f"hashed:{password}"

    def verifier(self, password: str, password_hash: str | None) -> bool:
        self.threads.append(threading.current_thread())
        assert self.open.wait(10), "the test never opened the gate"
        return password_hash == f"hashed:{password}"


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.open.set()  # never leave a worker thread blocked


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_the_call_after_workers_plus_queue_is_refused_at_once(gate: Gate) -> None:
    pool = PasswordPool(workers=2, max_waiting=3, retry_after=2, hasher=gate.hasher, verifier=gate.verifier)
    accepted = [asyncio.create_task(pool.hash(f"p{i}")) for i in range(5)]  # 2 running, 3 waiting
    await until(lambda: pool.accepted == 5 and len(gate.threads) == 2)
    with pytest.raises(PoolBusy) as refused:
        await asyncio.wait_for(pool.hash("one too many"), 1)
    assert refused.value.retry_after == 2
    with pytest.raises(PoolBusy):
        await asyncio.wait_for(pool.verify("one too many", "x"), 1)
    assert pool.refused == 2 and pool.accepted == 5

    gate.open.set()
    assert await asyncio.wait_for(asyncio.gather(*accepted), 10) == [f"hashed:p{i}" for i in range(5)]
    await until(lambda: pool.accepted == 0)
    assert await asyncio.wait_for(pool.verify("again", "hashed:again"), 10) is True  # room again
    pool.close()


async def test_a_queue_of_zero_takes_only_as_many_as_workers(gate: Gate) -> None:
    pool = PasswordPool(workers=1, max_waiting=0, hasher=gate.hasher, verifier=gate.verifier)
    running = asyncio.create_task(pool.hash("first"))
    await until(lambda: pool.accepted == 1)
    with pytest.raises(PoolBusy):
        await pool.hash("second")
    gate.open.set()
    assert await asyncio.wait_for(running, 10) == "hashed:first"
    pool.close()


async def test_a_waiting_call_given_up_frees_its_place(gate: Gate) -> None:
    pool = PasswordPool(workers=1, max_waiting=1, hasher=gate.hasher, verifier=gate.verifier)
    running = asyncio.create_task(pool.hash("running"))
    await until(lambda: len(gate.threads) == 1)
    waiting = asyncio.create_task(pool.hash("waiting"))
    await until(lambda: pool.accepted == 2)
    waiting.cancel()  # the client hung up while its call was queued
    await until(lambda: pool.accepted == 1)
    queued_again = asyncio.create_task(pool.hash("next"))
    await until(lambda: pool.accepted == 2)
    gate.open.set()
    assert await asyncio.wait_for(asyncio.gather(running, queued_again), 10) == ["hashed:running", "hashed:next"]
    pool.close()


async def test_a_running_call_given_up_keeps_its_place_until_its_thread_is_done(gate: Gate) -> None:
    pool = PasswordPool(workers=1, max_waiting=0, hasher=gate.hasher, verifier=gate.verifier)
    running = asyncio.create_task(pool.hash("running"))
    await until(lambda: len(gate.threads) == 1)
    running.cancel()
    await asyncio.sleep(0.05)
    assert pool.accepted == 1  # the thread still works on it: the bound counts threads, not awaits
    with pytest.raises(PoolBusy):
        await pool.hash("meanwhile")
    gate.open.set()
    await until(lambda: pool.accepted == 0)
    pool.close()


async def test_work_runs_in_the_pools_threads_while_the_loop_keeps_serving(gate: Gate) -> None:
    pool = PasswordPool(workers=2, max_waiting=0, hasher=gate.hasher, verifier=gate.verifier)
    call = asyncio.create_task(pool.verify("pw", "hashed:pw"))
    await until(lambda: len(gate.threads) == 1)  # run on the loop, the gate would block it until it failed
    await asyncio.sleep(0.05)  # the loop is free while the worker is blocked
    assert not call.done()
    gate.open.set()
    assert await asyncio.wait_for(call, 10) is True
    assert gate.threads[0] is not threading.main_thread()
    assert gate.threads[0].name.startswith("password")
    pool.close()


async def test_real_argon2_through_the_pool() -> None:
    pool = PasswordPool(workers=2, max_waiting=4)
    h = await asyncio.wait_for(pool.hash("correct horse"), 30)
    assert h.startswith("$argon2id$")
    assert await asyncio.wait_for(pool.verify("correct horse", h), 30) is True
    assert await asyncio.wait_for(pool.verify("wrong horse", h), 30) is False
    assert await asyncio.wait_for(pool.verify("correct horse", None), 30) is False  # no such account
    pool.close()


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        PasswordPool(workers=0)
    with pytest.raises(ValueError):
        PasswordPool(workers=1, max_waiting=-1)


class TestDummyHash:
    def test_has_the_parameters_of_a_real_hash(self) -> None:
        def parameters(h: str) -> list[str]:
            return h.split("$")[1:4]  # algorithm, version, memory/time/parallelism

        assert parameters(dummy_hash()) == parameters(hash_password("anything at all"))
        assert dummy_hash() == dummy_hash()  # made once

    def test_an_unknown_account_is_refused_after_a_real_verification(self, monkeypatch: pytest.MonkeyPatch) -> None:
        checked: list[str] = []

        def spy(password: str, password_hash: str) -> bool:
            checked.append(password_hash)
            return verify_password(password, password_hash)

        monkeypatch.setattr("gateway.security.credentials.verify_password", spy)
        assert verify_login("whatever", None) is False
        assert checked == [dummy_hash()]
        h = hash_password("right")
        assert verify_login("right", h) is True
        assert verify_login("wrong", h) is False
        assert checked[1:] == [h, h]
