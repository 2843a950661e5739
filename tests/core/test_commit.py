"""Applying commands: gapless order, batches applied once, coalesced updates, the end."""

from __future__ import annotations

from typing import cast

import pytest

from core.commands import Chat, Command, Join, PinProduct, ToggleLike
from core.commit import CommitInput, apply_commit, stop_stream, take_events
from core.results import Result
from tests.core.helpers import NOW, apply, new_state, types


class TestCoalescing:
    def test_many_changes_one_update_per_interval(self) -> None:
        s = new_state(update_interval=0.25)
        apply(s, *[ToggleLike(f"u{i}") for i in range(100)], Join("a"))
        events = take_events(s, clock=10.0)
        assert types(events) == ["stream_update"]
        assert events[0].body["likes"] == 100 and events[0].body["viewerCount"] == 1
        apply(s, ToggleLike("x"))
        assert take_events(s, clock=10.1) == []  # not due yet
        assert s.update_due_in(10.1) == pytest.approx(0.15)
        [update] = take_events(s, clock=10.25)
        assert update.body["likes"] == 101

    def test_no_update_without_change(self) -> None:
        s = new_state()
        assert s.update_due_in(0.0) is None
        assert take_events(s, clock=5.0) == []

    def test_like_then_unlike_by_two_people_still_updates_liked_by(self) -> None:
        s = new_state()
        apply(s, ToggleLike("a"))
        [first] = take_events(s, clock=1.0)
        assert (first.body["likedByAdded"], first.body["likedByRemoved"]) == (["a"], [])
        apply(s, ToggleLike("a"), ToggleLike("b"))
        [update] = take_events(s, clock=2.0)
        assert update.body["likes"] == 1
        assert (update.body["likedByAdded"], update.body["likedByRemoved"]) == (["b"], ["a"])
        assert "likedBy" not in update.body  # never the whole list: it can be thousands long

    def test_changes_that_cancel_out_within_a_tick_are_not_reported(self) -> None:
        s = new_state()
        apply(s, ToggleLike("a"), ToggleLike("a"), ToggleLike("b"))
        [update] = take_events(s, clock=1.0)
        assert (update.body["likedByAdded"], update.body["likedByRemoved"]) == (["b"], [])
        apply(s, ToggleLike("b"), ToggleLike("b"))
        [again] = take_events(s, clock=2.0)
        assert (again.body["likes"], again.body["likedByAdded"], again.body["likedByRemoved"]) == (1, [], [])

    def test_counters_show_once_their_update_is_emitted(self) -> None:
        s = new_state()
        apply(s, Join("a"), ToggleLike("a"))
        assert (s.viewer_count, s.likes) == (1, 1)  # the rules see every change at once
        shown = s.stream_data()
        assert (shown["viewerCount"], shown["likes"], shown["likedBy"]) == (0, 0, [])
        take_events(s, clock=1.0)
        shown = s.stream_data()
        assert (shown["viewerCount"], shown["likes"], shown["likedBy"]) == (1, 1, ["a"])


class TestOrderAndIdempotence:
    def test_sequence_is_gapless_and_ordered(self) -> None:
        s = new_state()
        apply(s, Chat("a", "1", False), ToggleLike("x"), PinProduct("p", "P", 1), Chat("a", "2", False))
        events = take_events(s, clock=0.0)
        assert [e.seq for e in events] == [1, 2, 3, 4]
        assert types(events) == ["chat_message", "pinned_products_updated", "chat_message", "stream_update"]

    def test_batch_applied_at_most_once(self) -> None:
        s = new_state()
        first = apply(s, Chat("a", "hello", False), ToggleLike("x"), batch="gw1:7")
        again = apply(s, Chat("a", "hello", False), ToggleLike("x"), batch="gw1:7")
        assert again == first
        assert s.chat_count == 1 and s.likes == 1

    def test_batch_memory_is_bounded(self) -> None:
        s = new_state(batch_memory=3)
        for i in range(10):
            apply(s, ToggleLike(f"u{i}"), batch=f"b{i}")
        assert list(s.applied_batches) == ["b7", "b8", "b9"]


def test_stop_flushes_counters_then_ends() -> None:
    s = new_state()
    apply(s, ToggleLike("a"))
    stop = stop_stream(s)
    events = take_events(s, clock=0.0)
    assert types(events) == ["stream_update", "stream_stopped"]
    assert stop.seq == events[-1].seq


def test_a_command_this_version_does_not_know_is_refused_naming_it() -> None:
    class FromANewerPeer:
        pass

    [r] = apply(new_state(), cast(Command, FromANewerPeer()))
    assert r == Result(ok=False, error="unknown command FromANewerPeer")


def test_a_commit_applies_its_gateways_batches_then_their_lease_expiries() -> None:
    s = new_state()
    joined = CommitInput(batches=[("gw1", "b1", [Join("a")]), ("gw2", "b2", [Join("b")])], now=NOW, clock=1.0)
    apply_commit(s, joined)
    assert s.viewers == {"a": {"gw1"}, "b": {"gw2"}}
    apply_commit(s, CommitInput(batches=[], now=NOW, clock=2.0, expired_gateways=["gw1"]))
    assert s.viewers == {"b": {"gw2"}}
