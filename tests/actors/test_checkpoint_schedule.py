"""The checkpoint schedule: when a stream's next checkpoint is due and how
slow writes space them out. Pure: times are passed in (binary-exact values, so
the boundaries are exact)."""

from __future__ import annotations

import pytest

from actors.checkpoint_schedule import CHECKPOINT_MAX_GAP_S, CHECKPOINT_SPACING, CheckpointSchedule, gap_after_write


class TestGapAfterWrite:
    def test_a_fast_write_keeps_the_configured_interval(self) -> None:
        assert gap_after_write(0.03125, interval=2.0) == 2.0  # 40 x 0.03125 = 1.25 < 2

    def test_a_write_costing_exactly_the_interval_over_the_spacing_keeps_it(self) -> None:
        assert gap_after_write(0.0625, interval=2.5) == 2.5  # 40 x 0.0625 = 2.5

    def test_a_slow_write_spaces_the_next_by_forty_times_its_cost(self) -> None:
        assert CHECKPOINT_SPACING == 40
        assert gap_after_write(0.125, interval=2.0) == 5.0
        assert gap_after_write(0.25, interval=2.0) == 10.0

    def test_the_gap_reaches_the_cap_exactly(self) -> None:
        assert CHECKPOINT_MAX_GAP_S == 20.0
        assert gap_after_write(0.5, interval=2.0) == 20.0  # 40 x 0.5 = 20: at the cap

    def test_a_very_slow_write_never_spaces_checkpoints_over_twenty_seconds(self) -> None:
        assert gap_after_write(0.5625, interval=2.0) == 20.0  # 40 x 0.5625 = 22.5
        assert gap_after_write(30.0, interval=2.0) == 20.0

    def test_the_cap_wins_over_a_longer_configured_interval(self) -> None:
        assert gap_after_write(0.0, interval=30.0) == 20.0


class TestCheckpointSchedule:
    def test_due_exactly_one_interval_after_the_last_one_not_before(self) -> None:
        schedule = CheckpointSchedule(interval=2.0, now=10.0)
        assert not schedule.due(10.0)
        assert not schedule.due(11.9375)
        assert schedule.due(12.0)
        assert schedule.due(12.0625)

    def test_taking_one_starts_the_next_gap(self) -> None:
        schedule = CheckpointSchedule(interval=2.0, now=0.0)
        schedule.taken(5.0)
        assert not schedule.due(6.9375)
        assert schedule.due(7.0)

    def test_due_in_counts_down_to_the_moment_due_says_yes(self) -> None:
        schedule = CheckpointSchedule(interval=2.0, now=10.0)
        assert schedule.due_in(10.0) == 2.0
        assert schedule.due_in(11.5) == 0.5 and not schedule.due(11.5)
        assert schedule.due_in(12.0) == 0.0 and schedule.due(12.0)
        assert schedule.due_in(30.0) == 0.0
        schedule.written(0.25)  # the gap follows the write's cost
        assert schedule.due_in(12.0) == 8.0

    def test_a_slow_write_pushes_the_next_one_out(self) -> None:
        schedule = CheckpointSchedule(interval=2.0, now=0.0)
        schedule.taken(100.0)
        schedule.written(0.25)  # took 0.25 s: the next is 10 s after the last one taken
        assert schedule.gap == 10.0
        assert not schedule.due(109.9375)
        assert schedule.due(110.0)

    def test_a_fast_write_after_a_slow_one_brings_the_interval_back(self) -> None:
        schedule = CheckpointSchedule(interval=2.0, now=0.0)
        schedule.written(0.25)
        schedule.written(0.015625)
        assert schedule.gap == 2.0

    @pytest.mark.parametrize("took", [0.5, 0.75, 4.0])
    def test_never_more_than_twenty_seconds_apart(self, took: float) -> None:
        schedule = CheckpointSchedule(interval=2.0, now=0.0)
        schedule.taken(50.0)
        schedule.written(took)
        assert not schedule.due(69.9375)
        assert schedule.due(70.0)
