"""The directory takes each live stream's actor from the registry's live set
(never by name), replaces it when the registry names another, and turns a
registry gone for good into "unavailable" (and looks for the registry again).
The registry is a fake behind a real `RegistryClient`."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest
from ray import exceptions as ray_errors
from ray.actor import ActorHandle

from actors.call_policy import ActorUnavailable
from actors.registry_client import RegistryClient
from core.live_set import LiveSet, RegistryAnswer
from gateway.streams import live_directory
from gateway.streams.hub import Hub
from gateway.streams.live_directory import LiveDirectory

STREAM = "0123456789abcdef01234567"


class FakeStreamActor:
    """A stream actor whose polls find nothing new (for the relays the directory starts)."""

    def __init__(self, name: str) -> None:
        self.name = name

        class _Poll:
            async def remote(self, *args: Any) -> Any:
                await asyncio.Event().wait()

        self.poll = _Poll()


ACTOR_A, ACTOR_B = FakeStreamActor("a"), FakeStreamActor("b")


class FakeRegistry:
    """Answers each poll with the next live set the test queued."""

    def __init__(self) -> None:
        self.live_sets: asyncio.Queue[LiveSet] = asyncio.Queue()
        self.start_fails_with: Exception | None = None
        outer = self

        class _Poll:
            async def remote(self, incarnation: str | None, version: int, wait_s: float) -> LiveSet:
                return await outer.live_sets.get()

        class _Start:
            async def remote(self, stream_id: str, wait_s: float | None = None) -> RegistryAnswer:
                if outer.start_fails_with is not None:
                    raise outer.start_fails_with
                return RegistryAnswer(True, data={"streamId": stream_id, "seq": 0, "epoch": "e"}, actor=ACTOR_B)

        class _PingPid:
            async def remote(self) -> int:
                outer.pings += 1
                if outer.ping_fails_with is not None:
                    raise outer.ping_fails_with
                if outer.ping_hangs:
                    await asyncio.Event().wait()
                return 4242

        self.pings = 0
        self.ping_fails_with: Exception | None = None
        self.ping_hangs = False
        self.poll = _Poll()
        self.start_stream = _Start()
        self.ping_pid = _PingPid()


@pytest.fixture
async def directory() -> Any:
    registry = FakeRegistry()
    d = LiveDirectory(Hub(), "gw1")
    d._registry = RegistryClient(cast(ActorHandle, registry))  # a fake handle: the client's `.remote()` reaches it
    yield d, registry
    await d.close()


async def test_each_stream_is_called_through_the_actor_the_live_set_names(directory: Any) -> None:
    d, registry = directory
    d.start()
    registry.live_sets.put_nowait(LiveSet("i1", 1, {STREAM: {"seq": 0, "epoch": "e"}}, {STREAM: ACTOR_A}))
    await asyncio.wait_for(d.synced.wait(), 2)
    assert d.stream_client(STREAM).handle is ACTOR_A
    relay_sees = d.relay(STREAM)._locate
    registry.live_sets.put_nowait(LiveSet("i2", 1, {STREAM: {"seq": 0, "epoch": "e"}}, {STREAM: ACTOR_B}))
    for _ in range(50):
        await asyncio.sleep(0.01)
        if d.stream_client(STREAM).handle is ACTOR_B:
            break
    assert d.stream_client(STREAM).handle is ACTOR_B  # the registry restarted and names another actor
    assert relay_sees().handle is ACTOR_B  # the relay's next call goes there


async def test_a_started_stream_is_called_through_the_actor_the_answer_names(directory: Any) -> None:
    d, _ = directory
    assert (await d.start_stream(STREAM)).ok
    assert d.stream_client(STREAM).handle is ACTOR_B
    assert d.relay(STREAM)._locate().handle is ACTOR_B


async def test_a_registry_gone_for_good_is_unavailable_and_looked_for_again(directory: Any) -> None:
    d, registry = directory
    registry.start_fails_with = ray_errors.ActorDiedError()
    with pytest.raises(ActorUnavailable):
        await d.start_stream(STREAM)
    assert d._registry is None


async def test_the_registry_check_is_true_while_it_answers_and_shared_between_callers(directory: Any) -> None:
    d, registry = directory
    answers = await asyncio.gather(*(d.registry_answers() for _ in range(20)))
    assert answers == [True] * 20
    assert registry.pings == 1  # checks within REGISTRY_CHECK_TTL_S share one ping


async def test_the_registry_check_is_false_within_its_bound_when_the_registry_hangs(
    directory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    d, registry = directory
    monkeypatch.setattr(live_directory, "REGISTRY_CHECK_S", 0.2)
    registry.ping_hangs = True
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await asyncio.wait_for(d.registry_answers(), 5) is False
    assert loop.time() - began < 2.0


async def test_the_registry_check_is_false_while_it_restarts_then_true_again(
    directory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    d, registry = directory
    monkeypatch.setattr(live_directory, "REGISTRY_CHECK_S", 0.3)
    monkeypatch.setattr(live_directory, "REGISTRY_CHECK_TTL_S", 0.0)
    registry.ping_fails_with = ray_errors.ActorUnavailableError("restarting", None)
    assert await asyncio.wait_for(d.registry_answers(), 5) is False
    registry.ping_fails_with = None
    assert await asyncio.wait_for(d.registry_answers(), 5) is True
    assert registry.pings >= 2


async def test_a_registry_that_is_not_running_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    d = LiveDirectory(Hub(), "gw1")
    monkeypatch.setattr(RegistryClient, "find", classmethod(lambda cls, observer=None: None))
    try:
        assert await asyncio.wait_for(d.registry_answers(), 5) is False
    finally:
        await d.close()


async def test_a_registry_lookup_that_ray_does_not_answer_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    d = LiveDirectory(Hub(), "gw1")
    monkeypatch.setattr(live_directory, "FIND_REGISTRY_S", 0.1)

    def hangs(cls: type, observer: object = None) -> None:
        time.sleep(1.0)  # Ray's control store not answering (in the thread the lookup runs in)

    monkeypatch.setattr(RegistryClient, "find", classmethod(hangs))
    try:
        with pytest.raises(ActorUnavailable):
            await asyncio.wait_for(d.start_stream(STREAM), 5)
    finally:
        await d.close()


class RegistryWithLiveSet(FakeRegistry):
    """Also answers `live` (the live set now) with `now`, counting the questions."""

    def __init__(self) -> None:
        super().__init__()
        self.now = LiveSet("i1", 1, {}, {})
        self.asked = 0
        self.answer = asyncio.Event()
        self.answer.set()
        outer = self

        class _Live:
            async def remote(self) -> LiveSet:
                outer.asked += 1
                await outer.answer.wait()
                return outer.now

        self.live = _Live()


async def test_a_stream_this_gateway_has_not_heard_of_yet_is_asked_of_the_registry_once_for_all() -> None:
    registry = RegistryWithLiveSet()
    d = LiveDirectory(Hub(), "gw1")
    d._registry = RegistryClient(cast(ActorHandle, registry))  # a fake handle: the client's `.remote()` reaches it
    try:
        # Not live anywhere: the registry says so; an id that cannot be a stream's is not asked about.
        assert not await d.live_here(STREAM)
        assert not await d.live_here("../../etc") and registry.asked == 1
        # Live at the registry, its long poll not here yet: asked, taken as the live set, and known from then on.
        registry.now = LiveSet("i1", 2, {STREAM: {"seq": 0, "epoch": "e"}}, {STREAM: ACTOR_A})
        registry.answer.clear()
        askers = [asyncio.create_task(d.live_here(STREAM)) for _ in range(5)]
        await asyncio.sleep(0.05)
        registry.answer.set()
        assert await asyncio.gather(*askers) == [True] * 5 and registry.asked == 2  # one question for all five
        client = d.stream_client(STREAM)
        assert client is not None and client.handle is ACTOR_A and d.relay(STREAM) is not None
        assert await d.live_here(STREAM) and registry.asked == 2
        # An older live set arriving afterwards (the long poll's) does not take the stream away.
        await d._apply(LiveSet("i1", 1, {}, {}))
        assert STREAM in d.live
    finally:
        await d.close()


async def test_a_registry_that_does_not_answer_leaves_the_stream_not_live_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live_directory, "LIFECYCLE_CHECK_S", 0.2)
    registry = RegistryWithLiveSet()
    registry.answer.clear()  # never answers
    d = LiveDirectory(Hub(), "gw1")
    d._registry = RegistryClient(cast(ActorHandle, registry))  # a fake handle: the client's `.remote()` reaches it
    try:
        began = time.monotonic()
        assert not await asyncio.wait_for(d.live_here(STREAM), 5)
        assert time.monotonic() - began < 2
    finally:
        await d.close()
