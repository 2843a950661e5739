"""How many spare stream actors to keep started: pure arithmetic, no Ray."""

from __future__ import annotations

import math
from collections import deque


class SparePlan:
    """How many spare stream actors to keep started: pure arithmetic, no Ray.

    A spare is a process started ahead (about 47 MB, 0.5 to 1.5 s of a core to
    start), so going live adopts one in tens of milliseconds instead of waiting
    for a process. The pool holds `minimum` when streams go live rarely, and
    grows toward what the recent rate needs: the starts that can arrive while
    replacements start (`rate × 2 × start time`, both measured), up to
    `maximum`. With no go-live for `idle_s`, it is back to `minimum`.
    """

    WINDOW_S = 10.0  # the go-live rate is taken over this much of the recent past

    def __init__(self, minimum: int, maximum: int, idle_s: float = 60.0, start_s: float = 1.0) -> None:
        self.minimum = max(0, minimum)
        self.maximum = max(self.minimum, maximum)
        self.idle_s = idle_s
        self.start_s = start_s  # how long a spare takes to start (moving average of measurements)
        self._starts: deque[float] = deque()
        self.last_start: float | None = None

    def went_live(self, now: float) -> None:
        """A stream went live (and took, or waits for, a spare)."""
        self._starts.append(now)
        self.last_start = now
        self._forget(now)

    def spare_started(self, seconds: float) -> None:
        """A spare took `seconds` from creation to answering."""
        self.start_s = 0.7 * self.start_s + 0.3 * seconds

    def target(self, now: float) -> int:
        """How many spares to hold (ready or starting) now."""
        if self.last_start is None or now - self.last_start >= self.idle_s:
            return self.minimum
        self._forget(now)
        rate = len(self._starts) / self.WINDOW_S
        return max(self.minimum, min(self.maximum, math.ceil(rate * 2 * self.start_s)))

    def _forget(self, now: float) -> None:
        while self._starts and self._starts[0] <= now - self.WINDOW_S:
            self._starts.popleft()
