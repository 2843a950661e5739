"""A stream's live numbers: the same projection whether they come from the
relay's view or from the actor's snapshot, and the stored record's after."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

from actors.call_policy import ActorCallError
from actors.stream_client import StreamClient
from core.commands import Chat, Command, Join, PinProduct, ToggleLike
from core.commit import apply_batch, take_events
from core.state import StreamMeta, StreamState
from core.stream_view import StreamView
from core.wire import pinned_products
from gateway.services import live_numbers

STREAM = "0123456789abcdef01234567"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def busy_state() -> StreamState:
    state = StreamState(meta=StreamMeta(stream_id=STREAM, title="t"))
    commands: list[Command] = [
        Join("s1"),
        Join("s2"),
        ToggleLike("s1"),
        ToggleLike("u9"),
        Chat(username="v", message="hi", is_admin=False, session_id="s1", user_id=None),
        PinProduct(product_id="p1", name="Lamp", price="12.30"),
    ]
    for i, command in enumerate(commands):
        assert apply_batch(state, "gw", f"b{i}", [command], T0)[0].ok
    take_events(state, 0.0, T0)
    return state


def test_numbers_of_a_snapshot_are_the_states_own() -> None:
    state = busy_state()
    numbers = live_numbers.of_snapshot(STREAM, state.snapshot())
    assert {k: numbers[k] for k in ("viewerCount", "likes", "likedBy", "chatCount", "peakViewers", "seq", "epoch")} == {
        "viewerCount": 2,
        "likes": 2,
        "likedBy": ["s1", "u9"],
        "chatCount": 1,
        "peakViewers": 2,
        "seq": state.seq,
        "epoch": state.epoch,
    }
    assert numbers["pinnedProducts"] == pinned_products(state.pinned_list())  # as shown (issue 15)


def test_a_relays_view_and_a_snapshot_give_the_same_numbers() -> None:
    state = busy_state()
    view = StreamView(STREAM)
    view.reset(state.snapshot())
    assert live_numbers.of_view(view) == live_numbers.of_snapshot(STREAM, state.snapshot())


def test_merged_prefers_live_numbers_then_the_record() -> None:
    record = {"viewerCount": 0, "peakViewers": 40, "likes": 7, "chatCount": 3, "pinnedProducts": [{"productId": "x"}]}
    ended = live_numbers.merged(record, None)
    assert (ended.viewer_count, ended.peak_viewers, ended.likes, ended.chat_count, ended.liked_by, ended.seq) == (
        0,
        40,
        7,
        3,
        [],
        None,
    )
    live = live_numbers.merged(record, {"viewerCount": 55, "likes": 9, "likedBy": ["a"], "seq": 12, "epoch": "e"})
    assert (live.viewer_count, live.peak_viewers, live.likes, live.chat_count, live.liked_by, live.seq, live.epoch) == (
        55,
        55,
        9,
        3,
        ["a"],
        12,
        "e",
    )  # the peak is never below the viewers now


class FakeStreamClient:
    """Counts snapshot calls; each waits for `release` so calls can overlap."""

    def __init__(self, snapshot: dict[str, Any], fail: bool = False) -> None:
        self.snapshot_ = snapshot
        self.fail = fail
        self.calls = 0
        self.release = asyncio.Event()

    async def snapshot(self) -> dict[str, Any]:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise ActorCallError("slow")
        return self.snapshot_


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_concurrent_requests_for_one_stream_ask_its_actor_once_per_ttl() -> None:
    clock = Clock()
    cache = live_numbers.LiveNumbersCache(ttl_seconds=1.0, clock=clock)
    actor = FakeStreamClient(busy_state().snapshot())
    client = cast(StreamClient, actor)
    waiting = [asyncio.create_task(cache.of_actor(STREAM, client)) for _ in range(50)]
    await asyncio.sleep(0.05)
    assert actor.calls == 1  # one call in flight, shared
    actor.release.set()
    answers = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert all(a is not None and a["viewerCount"] == 2 and a["likes"] == 2 for a in answers)
    clock.t += 0.9
    assert (await cache.of_actor(STREAM, client) or {})["likes"] == 2 and actor.calls == 1  # fresh: cached
    clock.t += 0.2
    await asyncio.gather(*(cache.of_actor(STREAM, client) for _ in range(20)))
    assert actor.calls == 2  # stale: asked again, once


async def test_an_actor_without_an_answer_is_remembered_as_none_and_a_waiter_giving_up_cancels_nobody() -> None:
    clock = Clock()
    cache = live_numbers.LiveNumbersCache(ttl_seconds=1.0, clock=clock)
    actor = FakeStreamClient({}, fail=True)
    client = cast(StreamClient, actor)
    impatient = asyncio.create_task(cache.of_actor(STREAM, client))
    patient = asyncio.create_task(cache.of_actor(STREAM, client))
    await asyncio.sleep(0.05)
    impatient.cancel()
    actor.release.set()
    assert await asyncio.wait_for(patient, 5) is None
    assert await cache.of_actor(STREAM, client) is None and actor.calls == 1


async def test_the_cache_keeps_at_most_max_streams_answers() -> None:
    cache = live_numbers.LiveNumbersCache(ttl_seconds=60.0, max_streams=3)
    actor = FakeStreamClient(busy_state().snapshot())
    actor.release.set()
    client = cast(StreamClient, actor)
    for i in range(5):
        await cache.of_actor(f"s{i}", client)
    assert len(cache._answers) == 3 and list(cache._answers) == ["s2", "s3", "s4"]
    await cache.of_actor("s4", client)
    assert actor.calls == 5  # still cached
    await cache.of_actor("s0", client)
    assert actor.calls == 6  # forgotten, asked again
