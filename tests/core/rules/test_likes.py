"""Likes: a toggle once per liker, runs of taps, client ids."""

from __future__ import annotations

from typing import ClassVar

import pytest

from core.checkpoint import from_checkpoint, to_checkpoint
from core.commands import Join, ToggleLike
from core.commit import take_events
from core.results import Result
from core.state import StreamState
from tests.core.helpers import apply, new_state
from tests.support.databases import found


class TestLikes:
    def test_toggle_once_per_liker(self) -> None:
        s = new_state()
        r = apply(s, ToggleLike("u1"), ToggleLike("u2"), ToggleLike("u1"))
        assert [found(x.data)["liked"] for x in r] == [True, True, False]
        assert s.likes == 1
        assert list(s.liked_by) == ["u2"]

    def test_empty_liker_rejected(self) -> None:
        s = new_state()
        [r] = apply(s, ToggleLike(""))
        assert not r.ok and s.likes == 0


class TestLikeRuns:
    """`ToggleLike(..., more=...)`: a gateway's run of taps in one command, applied
    exactly as the same taps one by one."""

    TAPS: ClassVar[list[str]] = ["a", "b", "a", "c", "c", "c", "d", "a", "b", "e"]

    def _one_by_one(self, state: StreamState, taps: list[str]) -> None:
        apply(state, *[ToggleLike(t) for t in taps])

    def _as_run(self, state: StreamState, taps: list[str]) -> list[Result]:
        return apply(state, ToggleLike(taps[0], None, tuple(taps[1:])))

    @pytest.mark.parametrize("cut", [1, 3, 10])
    def test_a_run_ends_where_the_same_taps_one_by_one_end(self, cut: int) -> None:
        single, run = new_state(), new_state()
        apply(single, ToggleLike("a"), ToggleLike("z"))
        apply(run, ToggleLike("a"), ToggleLike("z"))
        take_events(single, clock=1.0), take_events(run, clock=1.0)
        self._one_by_one(single, self.TAPS[:cut])
        self._one_by_one(single, self.TAPS[cut:])
        [r1] = self._as_run(run, self.TAPS[:cut])
        if self.TAPS[cut:]:
            self._as_run(run, self.TAPS[cut:])
        assert r1.ok
        assert list(run.liked_by) == list(single.liked_by) and run.likes == single.likes
        assert [e.body for e in take_events(run, clock=2.0)] == [e.body for e in take_events(single, clock=2.0)]
        ignore = ("epoch", "appliedBatches")
        assert {k: v for k, v in to_checkpoint(run).items() if k not in ignore} == {
            k: v for k, v in to_checkpoint(single).items() if k not in ignore
        }

    def test_the_answer_is_the_first_taps_unless_one_is_refused(self) -> None:
        s = new_state()
        [r] = self._as_run(s, ["a", "b"])
        assert r.ok and r.data == {"liked": True, "likes": 1}
        [refused] = apply(s, ToggleLike("c", None, ("", "d")))
        assert not refused.ok and s.likes == 4  # the others still count, as they would one by one

    def test_a_run_is_applied_once_per_batch(self) -> None:
        s = new_state()
        apply(s, ToggleLike("a", None, ("b",)), batch="gw1:1")
        apply(s, ToggleLike("a", None, ("b",)), batch="gw1:1")
        assert s.likes == 2


def test_a_resent_toggle_is_applied_once_and_survives_a_checkpoint() -> None:
    s = new_state()
    apply(s, ToggleLike("u", "t1"), ToggleLike("u", "t1"))
    assert s.likes == 1
    back = from_checkpoint(to_checkpoint(s), [])
    [r] = apply(back, ToggleLike("u", "t1"))
    assert r.data == {"liked": True, "likes": 1} and back.likes == 1


def test_the_actors_pending_limit_counts_each_tap_of_a_run() -> None:
    from actors.stream_actor import _taps

    assert _taps([ToggleLike("a", None, ("b", "c")), ToggleLike("d"), Join("x")]) == 5


def test_a_tap_without_a_liker_is_refused_saying_so_alone_or_in_a_run() -> None:
    s = new_state()
    refusal = Result(ok=False, error="toggle_like needs a user or a session")
    assert apply(s, ToggleLike("")) == [refusal]
    assert apply(s, ToggleLike("a", None, ("b", "", "c"))) == [refusal]
    assert list(s.liked_by) == ["a", "b", "c"]


def test_a_resend_gets_exactly_the_first_answer() -> None:
    s = new_state()
    first, _, again = apply(s, ToggleLike("u", "t1"), ToggleLike("v"), ToggleLike("u", "t1"))
    assert first == Result(ok=True, data={"liked": True, "likes": 1}) and again == first


def test_an_unlike_and_a_like_again_in_one_run_cancel_out_in_the_update() -> None:
    s = new_state(update_interval=0.25)
    apply(s, ToggleLike("a"))
    take_events(s, 0.0)
    apply(s, ToggleLike("b", None, ("a", "a")))  # a unlikes and likes again, between two updates
    [update] = take_events(s, 1.0)
    assert (update.body["likedByAdded"], update.body["likedByRemoved"]) == (["b"], [])
