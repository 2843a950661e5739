"""When a batching step (a commit, a socket write tick, a batch frame) runs next.

Leading edge plus trailing coalescing: a step that was last run at least
`interval` ago runs at once (on the next turn of the event loop: whatever
else arrived in the same turn goes with it); one that ran more recently runs
at `last + interval`, taking everything that arrived meanwhile. So a quiet
stream pays no timer, and a busy one still runs each step at most once per
`interval` (as with a fixed tick).

Pure and deterministic: the caller passes the time (seconds of one monotonic
clock) and says when the step ran.
"""

from __future__ import annotations

import math


class Pacer:
    """The pace of one batching step: at most one run per `interval` seconds."""

    __slots__ = ("interval", "last")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = -math.inf  # never ran: the first run is due at once

    def delay(self, now: float) -> float:
        """Seconds from `now` until the step may run: 0 if it last ran at
        least `interval` ago (run it now), else until `last + interval`."""
        return max(0.0, self.last + self.interval - now)

    def ran(self, now: float) -> None:
        """The step ran (started) at `now`: the next run is due `interval` later at the earliest."""
        self.last = now
