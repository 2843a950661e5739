"""Pinned products: display order, replacing, unpinning."""

from __future__ import annotations

from core.commands import PinProduct, UnpinProduct
from core.commit import take_events
from tests.core.helpers import apply, new_state, types


class TestPinnedProducts:
    def test_pin_orders_and_unpin(self) -> None:
        s = new_state()
        apply(
            s,
            PinProduct("p1", "Shoe", 10),
            PinProduct("p2", "Hat", "5.50"),
            PinProduct("p3", "Bag", 3, display_order=0),
        )
        events = take_events(s, 0.0)
        assert types(events) == ["pinned_products_updated"] * 3
        assert [p["productId"] for p in events[-1].body["pinnedProducts"]] == ["p3", "p1", "p2"]
        [r] = apply(s, UnpinProduct("p1"))
        assert r.ok
        assert [p["productId"] for p in s.pinned_list()] == ["p3", "p2"]
        [r] = apply(s, UnpinProduct("nope"))
        assert not r.ok

    def test_repin_keeps_order(self) -> None:
        s = new_state()
        apply(s, PinProduct("p1", "Shoe", 10), PinProduct("p2", "Hat", 5), PinProduct("p1", "Shoe v2", 12))
        assert [(p["productId"], p["displayOrder"], p["name"]) for p in s.pinned_list()] == [
            ("p1", 1, "Shoe v2"),
            ("p2", 2, "Hat"),
        ]
