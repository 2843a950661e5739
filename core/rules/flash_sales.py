"""Flash sales on pinned products: announced, updated (coalesced), ended.

The database holds the truth (stock is taken there, atomically); the stream
tells viewers. A change of units is applied only if its `version` is newer
than what the stream holds, and shown by the next coalesced
`flash_sale_updated`; a sale ends when sold out, when its time is up, by an
admin, or with the stream. Starting and ending twice are harmless.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.results import OK, Result
from core.state import StreamState
from runtime.clock import iso

_REQUIRED = frozenset({"saleId", "productId", "price", "quantity", "remaining", "endsAt"})


def start_sale(state: StreamState, sale: dict[str, Any]) -> Result:
    missing = _REQUIRED - set(sale)
    if missing:
        return Result.rejected(f"flash sale lacks {', '.join(sorted(missing))}")
    if sale["productId"] not in state.pinned:
        return Result.rejected(f"product {sale['productId']} is not pinned: pin it before a flash sale")
    if sale["saleId"] in state.flash_sales:
        return Result(ok=True)  # announced already
    state.flash_sales[sale["saleId"]] = dict(sale)
    event = state.emit("flash_sale_started", {"flashSale": dict(sale)})
    return Result(ok=True, seq=event.seq)


def sale_changed(state: StreamState, sale: dict[str, Any]) -> Result:
    current = state.flash_sales.get(sale.get("saleId", ""))
    if current is None:
        return Result.rejected("no such flash sale running")
    if int(sale.get("version", 0)) <= int(current.get("version", 0)):
        return OK  # an older report, arriving late
    current.update(sale)
    if int(current.get("remaining", 1)) <= 0:
        return end_sale(state, current["saleId"], "sold_out")
    state.sales_dirty.add(current["saleId"])
    return OK


def end_sale(state: StreamState, sale_id: str, reason: str) -> Result:
    sale = state.flash_sales.pop(sale_id, None)
    if sale is None:
        return OK  # ended already
    state.sales_dirty.discard(sale_id)
    event = state.emit("flash_sale_ended", {"flashSale": {**sale, "status": "ended"}, "reason": reason})
    return Result(ok=True, seq=event.seq)


def end_due_sales(state: StreamState, now: datetime) -> None:
    """End every sale whose time is up at `now`."""
    stamp = iso(now)
    for sale in state.flash_sale_list():
        if sale["endsAt"] <= stamp:
            end_sale(state, sale["saleId"], "time")


def end_all_sales(state: StreamState, reason: str) -> None:
    for sale_id in list(state.flash_sales):
        end_sale(state, sale_id, reason)


def emit_sale_updates(state: StreamState) -> None:
    """One `flash_sale_updated` per sale changed since the last one (in id order)."""
    for sale_id in sorted(state.sales_dirty):
        state.emit("flash_sale_updated", {"flashSale": dict(state.flash_sales[sale_id])})
    state.sales_dirty.clear()
