"""What the core's tests share: a state, a way to apply commands, a sale."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from core.commands import Command
from core.commit import apply_batch
from core.events import Event
from core.results import Result
from core.state import StreamMeta, StreamState

NOW = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
_batches = itertools.count(1)


def new_state(**kw: Any) -> StreamState:
    return StreamState(meta=StreamMeta(stream_id="s" * 24, title="Sale"), **kw)


def apply(state: StreamState, *commands: Command, gateway: str = "gw1", batch: str | None = None) -> list[Result]:
    """Apply `commands` as one batch of `gateway` (a new batch id unless `batch` is given)."""
    return apply_batch(state, gateway, batch or f"b{next(_batches)}", commands, NOW)


def types(events: list[Event]) -> list[str]:
    return [e.type for e in events]


def sale(**kw: object) -> dict[str, Any]:
    base = {
        "saleId": "f1",
        "productId": "p1",
        "price": "9.99",
        "quantity": 10,
        "remaining": 10,
        "perCustomerLimit": 2,
        "endsAt": "2026-11-25T12:05:00.000Z",
        "version": 1,
    }
    return {**base, **kw}
