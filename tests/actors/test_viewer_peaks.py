"""Minute peaks: which viewer counts are stored as a minute's sample. Pure."""

from __future__ import annotations

from actors.viewer_peaks import MinutePeaks


def test_the_first_count_of_a_minute_is_stored_even_zero() -> None:
    peaks = MinutePeaks()
    assert peaks.offer("2026-11-30T12:00", 0)


def test_only_a_count_above_the_minutes_peak_is_stored_again() -> None:
    peaks = MinutePeaks()
    assert peaks.offer("2026-11-30T12:00", 5)
    assert not peaks.offer("2026-11-30T12:00", 5)  # equal to the peak: nothing new
    assert not peaks.offer("2026-11-30T12:00", 3)
    assert peaks.offer("2026-11-30T12:00", 6)
    assert not peaks.offer("2026-11-30T12:00", 6)


def test_a_new_minute_starts_from_its_first_count_even_a_lower_one() -> None:
    peaks = MinutePeaks()
    assert peaks.offer("2026-11-30T12:00", 9)
    assert peaks.offer("2026-11-30T12:01", 2)
    assert not peaks.offer("2026-11-30T12:01", 1)
    assert peaks.offer("2026-11-30T12:01", 3)
