"""Which scheduled streams should have a stream actor started ahead: pure arithmetic, no Ray.

A stream with `scheduledAt` gets an actor started `ahead_s` before that time,
so that going live adopts a process that is already up (tens of milliseconds)
instead of starting one (a second or more, far more in a burst). The actor is
held while the show may still start: until `hold_s` after its scheduled time
(hosts start late), after which it is released and the stream goes live by the
ordinary path (the spare pool).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

HOLD_S = 1800.0  # a prewarmed actor waits this long past its stream's scheduled time for the host


def parse_time(value: object) -> datetime | None:
    """A stored `scheduledAt` (ISO 8601, `runtime.clock.iso`) as an aware datetime; None if absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True, slots=True)
class PrewarmPlan:
    """`due` says which streams want an actor now; `next_change` when that set
    next grows by itself (a stream entering its window), so a scanner can sleep
    until then."""

    ahead_s: float
    hold_s: float = HOLD_S

    def wants(self, scheduled_at: datetime, now: datetime) -> bool:
        """Whether a stream scheduled at that time wants its actor started now."""
        return scheduled_at - timedelta(seconds=self.ahead_s) <= now <= scheduled_at + timedelta(seconds=self.hold_s)

    def due(self, scheduled: dict[str, datetime], now: datetime) -> set[str]:
        """The ids (of scheduled, not yet live streams) that want an actor now."""
        if self.ahead_s <= 0:
            return set()
        return {stream_id for stream_id, at in scheduled.items() if self.wants(at, now)}

    def next_change(self, scheduled: dict[str, datetime], now: datetime) -> float | None:
        """Seconds until the next stream enters its window (None: none will)."""
        if self.ahead_s <= 0:
            return None
        ahead = timedelta(seconds=self.ahead_s)
        waits = [(at - ahead - now).total_seconds() for at in scheduled.values() if at - ahead > now]
        return min(waits) if waits else None
