"""The gateway's copy of a stream, fed by real StreamState snapshots and encoded events."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import orjson

from core.commands import (
    Chat,
    Command,
    Join,
    Leave,
    PinProduct,
    ToggleLike,
    UnpinProduct,
)
from core.commit import apply_batch, take_events
from core.state import StreamMeta, StreamState
from core.stream_view import StreamView
from core.wire import decode, encode_event, pinned_products

SID = "0123456789abcdef01234567"
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
_batches = itertools.count(1)
_mono = itertools.count(0, 10)  # far enough apart that every counter change is due at once


def new_state(**kw: Any) -> StreamState:
    return StreamState(meta=StreamMeta(stream_id=SID, title="Sale", quality="hd"), **kw)


def run(state: StreamState, *commands: Command) -> list[dict[str, Any]]:
    """Apply commands and return the events they produced, as a gateway receives them."""
    apply_batch(state, "gw1", f"b{next(_batches)}", commands, NOW)
    return [decode(encode_event(SID, state.epoch, e)) for e in take_events(state, float(next(_mono)))]


def chat(text: str, user: str = "ann") -> Chat:
    return Chat(username=user, message=text, is_admin=False, session_id="s1")


def loaded_view(state: StreamState, **kw: Any) -> StreamView:
    view = StreamView(SID, **kw)
    view.reset(state.snapshot())
    return view


def frames(view: StreamView) -> list[dict[str, Any]]:
    return [orjson.loads(t) for t in view.join_frames()]


class TestReset:
    def test_new_view_is_not_loaded(self) -> None:
        view = StreamView(SID)
        assert not view.loaded
        assert view.seq == 0 and view.epoch is None

    def test_reset_copies_the_snapshot(self) -> None:
        state = new_state()
        run(state, Join("a"), Join("b"), ToggleLike("a"))
        run(state, chat("one"), chat("two"))
        run(state, PinProduct("p1", "Mug", 9.5))
        view = loaded_view(state)
        assert view.loaded
        assert view.seq == state.seq > 0
        assert view.epoch == state.epoch
        assert view.stream_data == {k: v for k, v in state.stream_data().items() if k != "likedBy"}
        assert list(view.liked) == state.stream_data()["likedBy"]
        assert [m["message"] for m in view.chat] == ["one", "two"]
        assert view.chat_count == 2
        assert view.peak_viewers == 2
        public = view.public()
        assert public["viewerCount"] == 2 and public["likes"] == 1 and public["likedBy"] == ["a"]
        assert [p["productId"] for p in public["pinnedProducts"]] == ["p1"]

    def test_reset_keeps_a_copy_not_the_snapshots_dict(self) -> None:
        state = new_state()
        snap = state.snapshot()
        view = StreamView(SID)
        view.reset(snap)
        snap["streamData"]["title"] = "changed"
        assert view.stream_data["title"] == "Sale"

    def test_reset_keeps_at_most_history_size_messages(self) -> None:
        state = new_state(history_size=10)
        for i in range(6):
            run(state, chat(f"m{i}"))
        view = loaded_view(state, history_size=3)
        assert [m["message"] for m in view.chat] == ["m3", "m4", "m5"]
        assert view.chat_count == 6

    def test_first_reset_reports_nothing_missed(self) -> None:
        state = new_state()
        run(state, chat("one"))
        assert StreamView(SID).reset(state.snapshot()) == []

    def test_reset_returns_missed_chat_of_the_same_epoch(self) -> None:
        state = new_state()
        run(state, chat("seen"))
        view = loaded_view(state)
        run(state, chat("missed 1"), Join("a"))
        run(state, chat("missed 2"))
        missed = view.reset(state.snapshot())
        assert [m["message"] for m in missed] == ["missed 1", "missed 2"]
        assert all(m["seq"] > 1 for m in missed)
        assert view.seq == state.seq

    def test_a_first_reset_reports_what_is_newer_than_the_position_the_audience_was_shown(self) -> None:
        state = new_state()
        run(state, chat("before"))
        shown = (state.seq, state.epoch)  # an announcement made here
        run(state, chat("after 1"), Join("a"))
        run(state, chat("after 2"))
        missed = StreamView(SID).reset(state.snapshot(), shown)
        assert [m["message"] for m in missed] == ["after 1", "after 2"]
        assert StreamView(SID).reset(state.snapshot(), (state.seq, state.epoch)) == []
        assert StreamView(SID).reset(state.snapshot(), (0, "another epoch")) == []

    def test_reset_after_applying_everything_misses_nothing(self) -> None:
        state = new_state()
        view = loaded_view(state)
        for e in run(state, chat("a"), chat("b")):
            view.apply(e)
        assert view.reset(state.snapshot()) == []

    def test_reset_to_another_epoch_reports_nothing_missed(self) -> None:
        old = new_state(epoch="e-old")
        run(old, chat("old"))
        view = loaded_view(old)
        new = new_state(epoch="e-new")
        run(new, chat("new 1"), chat("new 2"))
        assert view.reset(new.snapshot()) == []
        assert view.epoch == "e-new"
        assert [m["message"] for m in view.chat] == ["new 1", "new 2"]


class TestApply:
    def test_chat_messages_in_order(self) -> None:
        state = new_state()
        view = loaded_view(state)
        events = run(state, chat("hello", "ann"), chat("hi", "bob"))
        for e in events:
            view.apply(e)
        assert view.seq == events[-1]["seq"] == state.seq
        assert list(view.chat) == [c.to_wire() for c in state.recent_chat]
        assert view.chat[0] == {
            "id": 1,
            "seq": 1,
            "username": "ann",
            "message": "hello",
            "isAdmin": False,
            "timestamp": "2026-11-25T12:00:00.000Z",
        }
        assert view.chat_count == 2

    def test_chat_keeps_only_the_last_history_size(self) -> None:
        state = new_state()
        view = loaded_view(state, history_size=2)
        for e in run(state, chat("1"), chat("2"), chat("3")):
            view.apply(e)
        assert [m["message"] for m in view.chat] == ["2", "3"]
        assert view.chat_count == 3

    def test_stream_update_sets_counters_and_peak(self) -> None:
        state = new_state()
        view = loaded_view(state)
        events = run(state, Join("a"), Join("b"), Join("c"), ToggleLike("a"))
        assert [e["type"] for e in events] == ["stream_update"]
        view.apply(events[0])
        assert view.stream_data["viewerCount"] == 3
        assert view.stream_data["likes"] == 1
        assert list(view.liked) == ["a"]
        assert view.peak_viewers == 3
        for e in run(state, *(Leave(s) for s in "abc")):
            view.apply(e)
        assert view.stream_data["viewerCount"] == 0
        assert view.peak_viewers == 3  # a peak never goes down
        assert view.stream_data["title"] == "Sale"  # untouched by updates

    def test_pinned_products_updated(self) -> None:
        state = new_state()
        view = loaded_view(state)
        for e in run(state, PinProduct("p1", "Mug", 9.5), PinProduct("p2", "Cup", "3", display_order=0)):
            view.apply(e)
        assert [p["productId"] for p in view.stream_data["pinnedProducts"]] == ["p2", "p1"]
        for e in run(state, UnpinProduct("p2")):
            view.apply(e)
        assert view.stream_data["pinnedProducts"] == pinned_products(state.pinned_list())  # as shown (issue 15)
        assert [p["productId"] for p in view.stream_data["pinnedProducts"]] == ["p1"]

    def test_view_tracks_the_state_through_mixed_events(self) -> None:
        state = new_state()
        view = loaded_view(state)
        for commands in [(Join("a"), chat("x")), (PinProduct("p", "n", 1),), (ToggleLike("a"), chat("y"))]:
            for e in run(state, *commands):
                view.apply(e)
        assert view.seq == state.seq
        assert view.stream_data == {k: v for k, v in state.stream_data().items() if k != "likedBy"}
        assert list(view.liked) == list(state.liked_by)  # kept from the updates' added/removed lists
        assert list(view.chat) == [c.to_wire() for c in state.recent_chat]

    def test_old_and_repeated_events_are_ignored(self) -> None:
        state = new_state()
        view = loaded_view(state)
        first = run(state, chat("first"))
        second = run(state, chat("second"))
        view.apply(first[0])
        view.apply(second[0])
        view.apply(second[0])  # repeated
        view.apply(first[0])  # older
        assert view.seq == 2
        assert [m["message"] for m in view.chat] == ["first", "second"]
        assert view.chat_count == 2

    def test_events_covered_by_the_snapshot_are_ignored(self) -> None:
        state = new_state()
        events = run(state, chat("a"), PinProduct("p", "n", 1))
        view = loaded_view(state)
        before = (view.seq, list(view.chat), view.chat_count, dict(view.stream_data))
        for e in events:
            view.apply(e)
        assert (view.seq, list(view.chat), view.chat_count, dict(view.stream_data)) == before

    def test_stale_update_does_not_roll_back_counters(self) -> None:
        state = new_state()
        view = loaded_view(state)
        stale = run(state, Join("a"))[0]
        fresh = run(state, Join("b"))[0]
        view.apply(fresh)
        view.apply(stale)
        assert view.stream_data["viewerCount"] == 2


class TestFrames:
    def test_join_frames_of_a_loaded_view(self) -> None:
        state = new_state()
        run(state, Join("a"), PinProduct("p1", "Mug", 9.5))
        run(state, chat("hello"), chat("again"))
        view = loaded_view(state)
        started, pinned, history = frames(view)
        envelope = {"streamId": SID, "seq": state.seq, "epoch": state.epoch}
        # likedBy says only whether this viewer likes: nobody does yet
        assert started == {
            "type": "stream_started",
            "streamData": {**state.stream_data(), "likedBy": [], "liked": False},
            **envelope,
        }
        shown = pinned_products(state.pinned_list())  # `_id`, exact number prices (issue 15)
        assert pinned == {"type": "pinned_products_updated", "pinnedProducts": shown, **envelope}
        assert history["type"] == "chat_history"
        assert {k: history[k] for k in envelope} == envelope
        assert [m["message"] for m in history["messages"]] == ["hello", "again"]  # oldest first

    def test_join_frames_without_pins_or_chat(self) -> None:
        view = loaded_view(new_state())
        started, pinned, history = frames(view)
        assert started["type"] == "stream_started" and started["streamData"]["title"] == "Sale"
        assert pinned["pinnedProducts"] == []
        assert history["messages"] == []
        assert started["seq"] == pinned["seq"] == history["seq"] == 0

    def test_join_frames_follow_applied_events(self) -> None:
        state = new_state()
        view = loaded_view(state)
        before = view.join_frames()
        for e in run(state, chat("new"), PinProduct("p", "n", 1)):
            view.apply(e)
        started, pinned, history = frames(view)
        assert view.join_frames() is not before
        assert started["seq"] == pinned["seq"] == history["seq"] == state.seq
        assert [p["productId"] for p in pinned["pinnedProducts"]] == ["p"]
        assert [m["message"] for m in history["messages"]] == ["new"]

    def test_join_frames_are_encoded_once_per_change(self) -> None:
        view = loaded_view(new_state())
        assert view.join_frames()[1] is view.join_frames()[1]  # pinned products and history are shared
        assert view.join_frames()[2] is view.join_frames()[2]

    def test_join_frames_say_whether_this_viewer_likes(self) -> None:
        state = new_state()
        run(state, ToggleLike("fan"), ToggleLike("other"))
        view = loaded_view(state)
        fan = orjson.loads(view.join_frames("fan")[0])["streamData"]
        stranger = orjson.loads(view.join_frames("stranger")[0])["streamData"]
        assert (fan["likedBy"], fan["liked"], fan["likes"]) == (["fan"], True, 2)
        assert (stranger["likedBy"], stranger["liked"], stranger["likes"]) == ([], False, 2)

    def test_join_frames_after_reset_to_another_epoch(self) -> None:
        view = loaded_view(new_state(epoch="e1"))
        view.join_frames()
        view.reset(new_state(epoch="e2").snapshot())  # same seq (0), new epoch
        assert all(f["epoch"] == "e2" for f in frames(view))

    def test_update_and_chat_frames(self) -> None:
        state = new_state()
        run(state, Join("a"), ToggleLike("u"))
        view = loaded_view(state)
        event = view.update_event()
        assert orjson.loads(view.personal_update(event, "u")) == {
            "type": "stream_update",
            "viewerCount": 1,
            "likes": 1,
            "likedBy": ["u"],
            "streamId": SID,
            "seq": state.seq,
            "epoch": state.epoch,
        }
        assert orjson.loads(view.personal_update(event, "someone else"))["likedBy"] == []
        message = {"id": 9, "seq": 9, "username": "x", "message": "m", "isAdmin": False, "timestamp": "t"}
        assert orjson.loads(view.chat_frame(message)) == {
            "type": "chat_message",
            **message,
            "_id": 9,  # as the old apps read documents: the same as `id`
            "streamId": SID,
            "epoch": state.epoch,
        }
