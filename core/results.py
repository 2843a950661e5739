"""The answer to one command: part of the wire contract between gateways and the stream.

Results cross Ray in every batch: a plain frozen dataclass without __slots__,
because unpickling a slotted dataclass calls dataclasses.fields() per object
(measured: most of a busy gateway's time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Result:
    """The answer to one command: accepted (with what it produced) or an error."""

    ok: bool
    error: str | None = None
    seq: int | None = None  # the event that the command produced, if any
    data: dict[str, Any] | None = None

    @staticmethod
    def rejected(message: str, code: str | None = None, **data: Any) -> Result:
        """A refusal; `code` (and any other data) lets the gateway tell the client
        more than the message (`{"code": "slow_mode", "retryAfter": 3}`)."""
        if code is None and not data:
            return Result(ok=False, error=message)
        return Result(ok=False, error=message, data={**({"code": code} if code else {}), **data})


OK = Result(ok=True)
