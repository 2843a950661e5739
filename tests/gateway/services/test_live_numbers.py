"""A stream's live numbers: the same projection whether they come from the
relay's view or from the actor's snapshot, and the stored record's after."""

from __future__ import annotations

from datetime import UTC, datetime

from core.commands import Chat, Command, Join, PinProduct, ToggleLike
from core.commit import apply_batch, take_events
from core.state import StreamMeta, StreamState
from core.stream_view import StreamView
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
    assert numbers["pinnedProducts"] == state.pinned_list()


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
