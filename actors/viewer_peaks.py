"""The most viewers a stream had in each minute, for analytics.

Every commit offers the current viewer count; only a new peak for its minute
(the first count of a minute, or one above that minute's peak so far) needs
storing. The store keeps the maximum per (stream, minute), so storing a peak
again after a retry or a restart is harmless, and one that failed to store is
made up for by the next higher one.

Pure and deterministic: the caller passes the minute (`YYYY-MM-DDTHH:MM`, UTC).
"""

from __future__ import annotations


class MinutePeaks:
    """The peak viewer count of the current minute."""

    __slots__ = ("_minute", "_peak")

    def __init__(self) -> None:
        self._minute: str | None = None
        self._peak = 0

    def offer(self, minute: str, viewers: int) -> bool:
        """Whether `viewers` is a new peak for `minute`, to be stored (minutes
        are offered in order; a new minute starts from its first count)."""
        if minute == self._minute and viewers <= self._peak:
            return False
        self._minute, self._peak = minute, viewers
        return True
