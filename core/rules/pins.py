"""Pinned products: shown over the video in display order, at most
`MAX_PINNED_PRODUCTS`. Every change sends the whole list
(`pinned_products_updated`): it is short, and a viewer never has to merge."""

from __future__ import annotations

from core.commands import PinProduct
from core.limits import MAX_PINNED_PRODUCTS
from core.results import Result
from core.state import StreamState


def pin(state: StreamState, p: PinProduct) -> Result:
    """Pin a product, or replace a pinned one (keeping its place unless
    `display_order` is given). Without an order it goes last."""
    if not p.product_id:
        return Result.rejected("pin needs a productId")
    if p.product_id not in state.pinned and len(state.pinned) >= MAX_PINNED_PRODUCTS:
        return Result.rejected(f"at most {MAX_PINNED_PRODUCTS} products can be pinned")
    order = p.display_order
    if order is None:
        existing = state.pinned.get(p.product_id)
        order = (
            existing["displayOrder"]
            if existing
            else max((q["displayOrder"] for q in state.pinned.values()), default=0) + 1
        )
    state.pinned[p.product_id] = {
        "productId": p.product_id,
        "name": p.name,
        "price": p.price,
        "currency": p.currency,
        "image": p.image,
        "displayOrder": order,
    }
    event = state.emit("pinned_products_updated", {"pinnedProducts": state.pinned_list()})
    return Result(ok=True, seq=event.seq)


def unpin(state: StreamState, product_id: str) -> Result:
    if product_id not in state.pinned:
        return Result.rejected(f"product {product_id} is not pinned")
    del state.pinned[product_id]
    event = state.emit("pinned_products_updated", {"pinnedProducts": state.pinned_list()})
    return Result(ok=True, seq=event.seq)
