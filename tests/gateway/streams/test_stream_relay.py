"""The relay's inbound side: commands reach the actor in order, like taps
that follow one another travel as one command of many likers, and a batch
refused by a fenced or ended actor goes, with the same id, to the actor the
live set names next. The actors are fakes behind a real `StreamClient`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import orjson
import pytest
from ray.actor import ActorHandle

from actors.call_policy import ActorFenced, ActorGone, ActorUnavailable
from actors.stream_client import StreamClient
from core.commands import Chat, Join, ToggleLike
from core.poll import PollResult
from core.results import Result
from gateway.streams import stream_relay
from gateway.streams.hub import Hub
from gateway.streams.stream_relay import StreamRelay
from gateway.transport.connection import Connection

STREAM = "0123456789abcdef01234567"
ACCEPTED = Result(ok=True)


class FakeActor:
    """Takes batches one at a time: each `submit` waits until the test lets it answer."""

    def __init__(self, answer: Result = ACCEPTED, fails_with: Exception | None = None) -> None:
        self.batches: list[list[Any]] = []
        self.batch_ids: list[str] = []
        self.answer = answer
        self.release = asyncio.Event()
        outer = self

        class _Submit:
            async def remote(self, gateway_id: str, batch_id: str, commands: list[Any]) -> list[Result]:
                outer.batches.append(list(commands))
                outer.batch_ids.append(batch_id)
                if fails_with is not None:
                    raise fails_with
                await outer.release.wait()
                return [outer.answer] * len(commands)

        self.submit = _Submit()


class LiveSet:
    """What the live set names as the stream's actor (the directory's `clients`)."""

    def __init__(self) -> None:
        self.client: StreamClient | None = None

    def name(self, actor: FakeActor) -> None:
        self.client = StreamClient(
            cast(ActorHandle, actor), STREAM
        )  # a fake handle: the client's `.remote()` reaches it


@pytest.fixture
def live() -> LiveSet:
    return LiveSet()


@pytest.fixture
def relay(live: LiveSet) -> StreamRelay:
    return StreamRelay(STREAM, "gw1", Hub(), lambda: live.client)


async def run_sends(relay: StreamRelay, actor: FakeActor, live: LiveSet) -> asyncio.Task[None]:
    live.name(actor)
    task = asyncio.create_task(relay._send_forever())
    await asyncio.sleep(0)
    return task


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_taps_queued_back_to_back_go_as_one_command(relay: StreamRelay, live: LiveSet) -> None:
    actor = FakeActor()
    task = await run_sends(relay, actor, live)
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


async def test_a_tap_with_an_id_or_any_other_command_ends_a_run_so_nothing_is_reordered(
    relay: StreamRelay, live: LiveSet
) -> None:
    actor = FakeActor()
    task = await run_sends(relay, actor, live)
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
    assert actor.batches[1] == [
        ToggleLike("a", None, ("b",)),
        ToggleLike("a", "tap-1"),
        ToggleLike("a"),
        Chat("ann", "hi", False),
        ToggleLike("c"),
    ]
    assert (await acked).ok and (await chat).ok
    task.cancel()


async def test_a_run_is_bounded(relay: StreamRelay, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_relay, "MAX_LIKE_RUN", 3)
    for liker in "abcdefg":
        relay.toggle_like(liker, lambda r: None)
    runs = [c for c, _ in relay._outbox if isinstance(c, stream_relay._LikeRun)]
    assert len(runs) == len(relay._outbox)  # every tap is in a run
    assert [run.command() for run in runs] == [
        ToggleLike("a", None, ("b", "c")),
        ToggleLike("d", None, ("e", "f")),
        ToggleLike("g"),
    ]


async def test_a_refusal_reaches_every_tap_of_the_run(relay: StreamRelay, live: LiveSet) -> None:
    actor = FakeActor(answer=Result.rejected("the stream could not take this; try again"))
    actor.release.set()
    told: list[str] = []

    def tell(who: str) -> Callable[[Result], None]:
        return lambda r: told.append(f"{who}: {r.error}")

    for liker in ["a", "b", "c"]:
        relay.toggle_like(liker, tell(liker))
    task = await run_sends(relay, actor, live)
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


@pytest.mark.parametrize("refusal", [ActorFenced("replaced"), ActorGone("ended")])
async def test_a_batch_refused_by_a_fenced_or_ended_actor_goes_to_the_next_one_the_live_set_names(
    relay: StreamRelay, live: LiveSet, refusal: Exception
) -> None:
    old, new = FakeActor(fails_with=refusal), FakeActor()
    new.release.set()
    task = await run_sends(relay, old, live)
    acked = relay.submit(Chat("ann", "hi", False))
    await settle()
    assert old.batches == [[Chat("ann", "hi", False)]]
    live.name(new)  # the registry's live set now names another actor
    assert (await asyncio.wait_for(acked, 2)).ok
    assert new.batches == old.batches and new.batch_ids == old.batch_ids  # the same batch, the same id
    task.cancel()


async def test_a_batch_for_a_stream_that_has_ended_is_refused_once_its_actor_is_gone(
    relay: StreamRelay, live: LiveSet
) -> None:
    task = await run_sends(relay, FakeActor(fails_with=ActorGone("ended")), live)
    relay.stopped.set()  # the actor published stream_stopped
    acked = relay.submit(Chat("ann", "too late", False))
    assert (await asyncio.wait_for(acked, 2)).error == "the stream has ended"
    task.cancel()


async def test_the_outbox_is_bounded_refusals_are_busy_and_what_was_queued_is_kept(live: LiveSet) -> None:
    relay = StreamRelay(STREAM, "gw1", Hub(), lambda: live.client, outbox_max=4)
    actor = FakeActor()  # never answers until released: a slow or stopped actor
    task = await run_sends(relay, actor, live)
    first = relay.submit(Chat("ann", "in flight", False))
    await settle()
    assert relay.queued == 0  # taken as the batch in flight
    queued = [relay.submit(Chat("ann", f"q{i}", False)) for i in range(2)]
    told: list[Result] = []
    relay.toggle_like("a", told.append)
    relay.toggle_like("b", told.append)  # each tap of the run counts: the outbox is now full
    assert relay.queued == 4
    refused = relay.submit(Chat("ann", "one too many", False))
    relay.toggle_like("c", told.append)
    r = await asyncio.wait_for(refused, 1)
    assert not r.ok and (r.data or {}).get("code") == "busy" and (r.data or {}).get("retryAfter", 0) > 0
    assert [(t.data or {}).get("code") for t in told] == ["busy"]
    assert relay.metrics.traffic.refused["busy"] == 2
    assert relay.queued == 4  # refusals take no room and drop nothing queued
    actor.release.set()
    await settle()
    assert (await first).ok and all([(await q).ok for q in queued])
    assert actor.batches[1] == [Chat("ann", "q0", False), Chat("ann", "q1", False), ToggleLike("a", None, ("b",))]
    assert relay.queued == 0
    again = relay.submit(Chat("ann", "one too many", False))  # room again: the resend is taken
    await settle()
    assert (await asyncio.wait_for(again, 1)).ok
    task.cancel()


async def test_what_the_gateway_must_tell_the_actor_is_queued_even_when_the_outbox_is_full(live: LiveSet) -> None:
    relay = StreamRelay(STREAM, "gw1", Hub(), lambda: live.client, outbox_max=1)
    relay.submit(Chat("ann", "fills it", False))
    assert not (await asyncio.wait_for(relay.submit(Chat("ann", "refused", False)), 1)).ok
    join = relay.submit(Join("s1"))
    assert not join.done() and relay.queued == 2


async def test_the_relay_reports_what_the_actor_last_said_of_its_health(relay: StreamRelay) -> None:
    relay._receive(PollResult("inc", "ep", healthy=False))
    assert not relay.healthy
    relay._receive(PollResult("inc", "ep"))
    assert relay.healthy


async def test_a_viewer_waits_a_bounded_time_for_a_view_that_never_catches_up(
    relay: StreamRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_relay, "ATTEND_TIMEOUT_S", 0.1)  # the actor never answers a poll: never ready
    with pytest.raises(ActorUnavailable) as raised:
        await asyncio.wait_for(relay.attend(), 5)
    assert raised.value.code == "unavailable" and raised.value.retry_after == 1
    relay.ready.set()
    await asyncio.wait_for(relay.attend(), 1)  # once caught up, at once


def _snapshot(seq: int, epoch: str, chat: list[tuple[int, str]]) -> dict[str, Any]:
    """A stream's snapshot as its actor's poll answers it (only what the view reads)."""
    return {
        "streamData": {"streamId": STREAM, "title": "Sale", "viewerCount": 1, "likes": 2, "likedBy": []},
        "chat": [
            {"seq": n, "id": str(n), "username": "ann", "message": text, "timestamp": "2026-12-01T00:00:00Z"}
            for n, text in chat
        ],
        "chatCount": len(chat),
        "seq": seq,
        "epoch": epoch,
    }


def _watcher(hub: Hub) -> Connection:
    c = Connection(websocket=object(), queue_size=16)  # type: ignore[arg-type]  # the hub never reads the socket
    c.session_id = "old-1"
    hub.add(c)
    hub.watch(c, STREAM)  # moved in by the announcement, before the relay's view loaded
    return c


def _frames_written(hub: Hub, c: Connection) -> list[dict[str, Any]]:
    hub.write_all()
    queue = c._queue
    assert queue is not None, "a connection has a queue from its creation"
    out = []
    while not queue.empty():
        text = queue.get_nowait()
        assert text is not None
        out.append(orjson.loads(text))
    return out


async def test_an_audience_moved_in_at_the_announcement_gets_what_happened_before_the_first_load() -> None:
    hub = Hub()
    relay = StreamRelay(STREAM, "gw1", hub, lambda: None, announced=(3, "ep"))
    old_app = _watcher(hub)
    relay._receive(PollResult("inc", "ep", snapshot=_snapshot(5, "ep", [(2, "before"), (4, "hello")])))
    frames = _frames_written(hub, old_app)
    assert [(f["type"], f.get("message")) for f in frames] == [("chat_message", "hello"), ("stream_update", None)]
    assert frames[1]["viewerCount"] == 1 and frames[1]["likes"] == 2
    # Only the first load: later snapshots compare with the view, as ever.
    relay._receive(PollResult("inc", "ep", snapshot=_snapshot(5, "ep", [(2, "before"), (4, "hello")])))
    assert [f["type"] for f in _frames_written(hub, old_app)] == ["stream_update"]


async def test_a_first_load_at_the_announced_position_or_without_one_delivers_nothing() -> None:
    for announced in [(5, "ep"), None]:
        hub = Hub()
        relay = StreamRelay(STREAM, "gw1", hub, lambda: None, announced=announced)
        old_app = _watcher(hub)
        relay._receive(PollResult("inc", "ep", snapshot=_snapshot(5, "ep", [(4, "hello")])))
        assert _frames_written(hub, old_app) == [], announced
        assert relay.ready.is_set()
