"""What a gateway gets when it polls a stream actor: plain values that cross Ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PollResult:
    """What a gateway gets from `poll`.

    `events` are (seq, text) pairs after the gateway's position. If `snapshot`
    is set, the gateway's position could not be served (new epoch, or older
    than the log): it must replace its view with the snapshot, whose position
    is `snapshot["seq"]`, and go on from there.
    """

    incarnation: str
    epoch: str
    events: list[tuple[int, str]] = field(default_factory=list)
    snapshot: dict[str, Any] | None = None
    stopped: bool = False
    healthy: bool = True
