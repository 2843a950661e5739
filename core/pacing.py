"""When a batching step (a commit, a socket write tick, a batch frame) runs next.

Leading edge plus trailing coalescing, spaced by cost: a step runs at once
(on the next turn of the event loop: whatever else arrived in the same turn
goes with it) unless it ran less than a gap ago; then it runs when the gap is
over, taking everything that arrived meanwhile. The gap follows what the last
run cost: `SPACING` times its duration (so back-to-back runs take at most
1/`SPACING` of the time), never more than `interval`. A quiet stream pays no
timer; a cheap step (few viewers, a fast write) is barely held; a costly one
is run at most once per `interval`, as with a fixed tick.

Pure and deterministic: the caller passes the time (seconds of one monotonic
clock) and says when each run started and how long it took.
"""

from __future__ import annotations

import math

SPACING = 2  # runs back to back take at most half the time before they are coalesced further


class Pacer:
    """The pace of one batching step: at most one run per gap (see the module doc)."""

    __slots__ = ("gap", "interval", "last")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.gap = interval
        self.last = -math.inf  # never ran: the first run is due at once

    def delay(self, now: float) -> float:
        """Seconds from `now` until the step may run: 0 if it last started at
        least a gap ago (run it now), else until `last + gap`."""
        return max(0.0, self.last + self.gap - now)

    def ran(self, started: float, took: float) -> None:
        """A run started at `started` and took `took` seconds: the next may
        start `min(interval, SPACING * took)` after it."""
        self.last = started
        self.gap = min(self.interval, SPACING * took)
