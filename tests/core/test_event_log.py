"""The bounded log of published events that polls and resumption read from."""

import pytest

from core.event_log import EventLog


def test_since_returns_events_after_position() -> None:
    log = EventLog(capacity=10)
    for seq in range(1, 6):
        log.append(seq, f"e{seq}")
    assert log.since(2) == [(3, "e3"), (4, "e4"), (5, "e5")]
    assert log.since(5) == []
    assert log.since(0) == [(s, f"e{s}") for s in range(1, 6)]


def test_gap_older_than_capacity_is_not_covered() -> None:
    log = EventLog(capacity=3)
    for seq in range(1, 8):
        log.append(seq, f"e{seq}")
    assert log.first_seq == 5
    assert log.covers(4) and not log.covers(3)
    assert not log.covers(8)  # a position from the future (another epoch, or a lost log)
    with pytest.raises(ValueError):
        log.since(3)


def test_starts_after_a_restored_position() -> None:
    log = EventLog(capacity=3, last_seq=41)
    assert log.covers(41) and not log.covers(40)
    log.append(42, "x")
    assert log.since(41) == [(42, "x")]


def test_rejects_out_of_order_appends() -> None:
    log = EventLog(capacity=3)
    log.append(1, "a")
    with pytest.raises(ValueError):
        log.append(3, "c")
