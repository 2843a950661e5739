"""When a stream's next checkpoint is due.

A checkpoint is a full copy of a stream's state; the journal carries every
commit after it, so the gap between two checkpoints is what a restart
replays. Writing one also holds up the journal appends the database serves
next, so a big stream's checkpoints (slow to write) are spaced out: after a
write that took `t` seconds the next is due `CHECKPOINT_SPACING * t` later,
so checkpoint writes take at most 1/`CHECKPOINT_SPACING` of the time; never
sooner than the configured interval, never later than `CHECKPOINT_MAX_GAP_S`.

Pure and deterministic: the caller passes the time (seconds of one monotonic
clock) and the measured cost of each write.
"""

from __future__ import annotations

CHECKPOINT_SPACING = 40
CHECKPOINT_MAX_GAP_S = 20.0


def gap_after_write(took: float, interval: float) -> float:
    """Seconds from one checkpoint to the next after a write that took `took`
    seconds: `CHECKPOINT_SPACING * took`, at least `interval`, at most
    `CHECKPOINT_MAX_GAP_S` (the cap wins over `interval`)."""
    return min(CHECKPOINT_MAX_GAP_S, max(interval, CHECKPOINT_SPACING * took))


class CheckpointSchedule:
    """The checkpoint cadence of one stream.

    A checkpoint is due `gap` seconds after the last one was taken (its
    document built). The gap starts at `interval` and, after each write,
    follows that write's cost (`gap_after_write`).
    """

    __slots__ = ("gap", "interval", "last_taken")

    def __init__(self, interval: float, now: float) -> None:
        self.interval = interval
        self.gap = interval
        self.last_taken = now

    def due(self, now: float) -> bool:
        """Whether a checkpoint is due at `now` (exactly `gap` after the last one: due)."""
        return now - self.last_taken >= self.gap

    def due_in(self, now: float) -> float:
        """Seconds from `now` until a checkpoint is due (0: due now)."""
        return max(0.0, self.last_taken + self.gap - now)

    def taken(self, now: float) -> None:
        """A checkpoint was taken at `now` (or the state was just loaded from
        one): the next is due a gap from now."""
        self.last_taken = now

    def written(self, took: float) -> None:
        """A checkpoint write took `took` seconds: space the next ones by it."""
        self.gap = gap_after_write(took, self.interval)
