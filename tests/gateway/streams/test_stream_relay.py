"""The relay's inbound side: commands reach the actor in order, and like taps
that follow one another travel as one command of many likers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.commands import Chat, ToggleLike
from core.results import Result
from gateway.streams import stream_relay
from gateway.streams.hub import Hub
from gateway.streams.stream_relay import StreamRelay

STREAM = "0123456789abcdef01234567"


class FakeActor:
    """Takes batches one at a time: each `submit` waits until the test lets it answer."""

    def __init__(self, answer: Result = Result(ok=True)) -> None:
        self.batches: list[list[Any]] = []
        self.answer = answer
        self.release = asyncio.Event()
        outer = self

        class _Submit:
            async def remote(self, gateway_id: str, batch_id: str, commands: list[Any]) -> list[Result]:
                outer.batches.append(list(commands))
                await outer.release.wait()
                return [outer.answer] * len(commands)

        self.submit = _Submit()


@pytest.fixture
def relay() -> StreamRelay:
    return StreamRelay(STREAM, "gw1", Hub())


async def run_sends(relay: StreamRelay, actor: FakeActor) -> asyncio.Task[None]:
    relay._actor = actor
    task = asyncio.create_task(relay._send_forever())
    await asyncio.sleep(0)
    return task


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_taps_queued_back_to_back_go_as_one_command(relay: StreamRelay) -> None:
    actor = FakeActor()
    task = await run_sends(relay, actor)
    errors: list[Result] = []
    relay.toggle_like("first", errors.append)  # goes out alone: nothing in flight yet
    await settle()
    for liker in ["a", "b", "a", "c"]:  # queued while the first batch is in flight
        relay.toggle_like(liker, errors.append)
    actor.release.set()
    await settle()
    assert actor.batches == [[ToggleLike("first")], [ToggleLike("a", None, ("b", "a", "c"))]]
    assert errors == []
    task.cancel()


async def test_a_tap_with_an_id_or_any_other_command_ends_a_run_so_nothing_is_reordered(relay: StreamRelay) -> None:
    actor = FakeActor()
    task = await run_sends(relay, actor)
    relay.submit(Chat("ann", "hold", False))
    await settle()
    relay.toggle_like("a", lambda r: None)
    relay.toggle_like("b", lambda r: None)
    acked = relay.submit(ToggleLike("a", "tap-1"))
    relay.toggle_like("a", lambda r: None)
    chat = relay.submit(Chat("ann", "hi", False))
    relay.toggle_like("c", lambda r: None)
    actor.release.set()
    await settle()
    assert actor.batches[1] == [ToggleLike("a", None, ("b",)), ToggleLike("a", "tap-1"), ToggleLike("a"),
                                Chat("ann", "hi", False), ToggleLike("c")]
    assert (await acked).ok and (await chat).ok
    task.cancel()


async def test_a_run_is_bounded(relay: StreamRelay, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_relay, "MAX_LIKE_RUN", 3)
    for liker in "abcdefg":
        relay.toggle_like(liker, lambda r: None)
    assert [c.command() for c, _ in relay._outbox] == [
        ToggleLike("a", None, ("b", "c")), ToggleLike("d", None, ("e", "f")), ToggleLike("g")]


async def test_a_refusal_reaches_every_tap_of_the_run(relay: StreamRelay) -> None:
    actor = FakeActor(answer=Result.rejected("the stream could not take this; try again"))
    actor.release.set()
    told: list[str] = []
    for liker in ["a", "b", "c"]:
        relay.toggle_like(liker, lambda r, who=liker: told.append(f"{who}: {r.error}"))
    task = await run_sends(relay, actor)
    await settle()
    assert told == [f"{w}: the stream could not take this; try again" for w in "abc"]
    task.cancel()


async def test_taps_still_queued_when_the_stream_ends_are_each_told(relay: StreamRelay) -> None:
    told: list[Result] = []
    relay.toggle_like("a", told.append)
    relay.toggle_like("b", told.append)
    await relay.close()
    relay.toggle_like("c", told.append)
    assert [r.error for r in told] == ["the stream has ended"] * 3
