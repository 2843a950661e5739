"""Time as the project stores and shows it: ISO 8601 strings in UTC.

Every timestamp is stored as `YYYY-MM-DDTHH:MM:SS.mmmZ` (what JavaScript's
`toISOString()` gives the apps). Such strings sort in time order, group by
minute or day with a prefix, and mean the same on a real MongoDB and on the
embedded server (which stores a `datetime` set by an update as a string).
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now() -> datetime:
    return datetime.now(UTC)


def now_iso() -> str:
    return iso(now())
