"""The batching pace: leading edge plus trailing coalescing, on a fake clock
(binary-exact times, so the boundaries are exact)."""

from __future__ import annotations

from core.pacing import Pacer


class TestPacer:
    def test_a_step_that_never_ran_runs_at_once(self) -> None:
        assert Pacer(0.25).delay(0.0) == 0.0
        assert Pacer(0.25).delay(1000.0) == 0.0

    def test_right_after_a_run_the_next_waits_for_the_interval(self) -> None:
        p = Pacer(0.25)
        p.ran(10.0)
        assert p.delay(10.0) == 0.25
        assert p.delay(10.125) == 0.125  # an event mid-interval goes with the trailing run

    def test_exactly_one_interval_later_it_runs_at_once(self) -> None:
        p = Pacer(0.25)
        p.ran(10.0)
        assert p.delay(10.25) == 0.0

    def test_a_quiet_step_runs_at_once(self) -> None:
        p = Pacer(0.25)
        p.ran(10.0)
        assert p.delay(12.5) == 0.0  # the last run is long past: no timer at all

    def test_under_load_runs_are_one_interval_apart(self) -> None:
        """Events every 1/16 s: runs at 0, 0.25, 0.5 ... (a fixed tick's pace), never closer."""
        p = Pacer(0.25)
        runs: list[float] = []
        due: float | None = None
        for i in range(33):
            now = i / 16
            if due is not None and now >= due:  # the trailing run fires
                p.ran(due)
                runs.append(due)
                due = None
            if due is None:  # an event arrives and nothing is scheduled
                due = now + p.delay(now)
                if due == now:
                    p.ran(now)
                    runs.append(now)
                    due = None
        assert runs == [k / 4 for k in range(9)]

    def test_a_zero_interval_never_waits(self) -> None:
        p = Pacer(0.0)
        p.ran(5.0)
        assert p.delay(5.0) == 0.0
