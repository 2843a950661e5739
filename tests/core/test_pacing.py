"""The batching pace: leading edge plus trailing coalescing spaced by cost,
on a fake clock (binary-exact times, so the boundaries are exact)."""

from __future__ import annotations

from core.pacing import SPACING, Pacer


class TestPacer:
    def test_a_step_that_never_ran_runs_at_once(self) -> None:
        assert Pacer(0.25).delay(0.0) == 0.0
        assert Pacer(0.25).delay(1000.0) == 0.0

    def test_after_a_costly_run_the_next_waits_for_the_interval(self) -> None:
        p = Pacer(0.25)
        p.ran(10.0, took=0.5)  # SPACING x 0.5 s is past the interval: the interval caps it
        assert p.delay(10.0) == 0.25
        assert p.delay(10.125) == 0.125  # an event mid-interval goes with the trailing run
        assert p.delay(10.25) == 0.0  # exactly one interval later: at once

    def test_after_a_cheap_run_the_next_waits_only_spacing_times_its_cost(self) -> None:
        assert SPACING == 2
        p = Pacer(0.25)
        p.ran(10.0, took=0.015625)
        assert p.delay(10.0) == 0.03125
        assert p.delay(10.03125) == 0.0
        p.ran(11.0, took=0.0)  # free: never held
        assert p.delay(11.0) == 0.0

    def test_a_quiet_step_runs_at_once(self) -> None:
        p = Pacer(0.25)
        p.ran(10.0, took=1.0)
        assert p.delay(12.5) == 0.0  # the last run is long past: no timer at all

    def test_under_load_costly_runs_are_one_interval_apart(self) -> None:
        """Events every 1/16 s, each run costing 0.125 s: runs at 0, 0.25, 0.5 ... (a fixed tick's pace)."""
        p = Pacer(0.25)
        runs: list[float] = []
        due: float | None = None
        for i in range(33):
            now = i / 16
            if due is not None and now >= due:  # the trailing run fires
                p.ran(due, took=0.125)
                runs.append(due)
                due = None
            if due is None:  # an event arrives and nothing is scheduled
                due = now + p.delay(now)
                if due == now:
                    p.ran(now, took=0.125)
                    runs.append(now)
                    due = None
        assert runs == [k / 4 for k in range(9)]

    def test_the_gap_follows_the_last_run_only(self) -> None:
        p = Pacer(0.25)
        p.ran(0.0, took=1.0)
        p.ran(1.0, took=0.0625)  # cheaper now: the gap shrinks back
        assert p.delay(1.0) == 0.125

    def test_a_zero_interval_never_waits(self) -> None:
        p = Pacer(0.0)
        p.ran(5.0, took=1.0)
        assert p.delay(5.0) == 0.0
