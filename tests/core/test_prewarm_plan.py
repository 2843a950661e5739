"""Which scheduled streams get an actor started ahead, and when the next one does (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.prewarm_plan import PrewarmPlan, parse_time

NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def test_a_stream_is_due_from_its_window_until_its_hold_ends() -> None:
    plan = PrewarmPlan(ahead_s=120, hold_s=600)
    scheduled = {
        "soon": at(60),
        "edge": at(120),
        "later": at(121),
        "late": at(-599),
        "last": at(-600),
        "gone": at(-601),
    }
    assert plan.due(scheduled, NOW) == {"soon", "edge", "late", "last"}


def test_prewarming_off_wants_nothing() -> None:
    plan = PrewarmPlan(ahead_s=0)
    assert plan.due({"soon": at(1), "started": at(-1)}, NOW) == set()
    assert plan.next_change({"soon": at(1)}, NOW) is None


def test_next_change_is_when_the_next_stream_enters_its_window() -> None:
    plan = PrewarmPlan(ahead_s=120)
    assert plan.next_change({"due": at(60), "next": at(150), "after": at(400)}, NOW) == 30.0
    assert plan.next_change({"due": at(60)}, NOW) is None
    assert plan.next_change({"entering now": at(120)}, NOW) is None  # already in its window: due, not next


def test_a_one_second_lead_is_on() -> None:
    plan = PrewarmPlan(ahead_s=1)
    assert plan.due({"soon": at(1), "later": at(2)}, NOW) == {"soon"}
    assert plan.next_change({"later": at(5)}, NOW) == 4.0


def test_stored_times_parse_and_garbage_does_not() -> None:
    assert parse_time("2026-12-01T20:00:00.000Z") == NOW
    assert parse_time("2026-12-01T21:00:00+01:00") == NOW
    assert parse_time("2026-12-01T20:00:00") is None  # no offset: not a moment
    assert parse_time("tomorrow") is None
    assert parse_time(None) is None
    assert parse_time(1764619200) is None  # a number is not a stored time
    assert parse_time("") is None
