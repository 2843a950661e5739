"""Pinned products: display order, replacing, unpinning."""

from __future__ import annotations

from core.commands import PinProduct, UnpinProduct
from core.commit import take_events
from core.limits import MAX_PINNED_PRODUCTS
from core.results import Result
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


class TestPinAnswers:
    """What each pin and unpin answers, and the exact list viewers are sent."""

    def test_a_pin_answers_its_event_and_sends_every_field(self) -> None:
        s = new_state()
        [r] = apply(s, PinProduct("p1", "Shoe", "19.99", image="https://img/shoe.png", currency="EUR"))
        [event] = take_events(s, 0.0)
        assert r == Result(ok=True, seq=event.seq)
        assert (event.type, event.body) == (
            "pinned_products_updated",
            {
                "pinnedProducts": [
                    {
                        "productId": "p1",
                        "name": "Shoe",
                        "price": "19.99",
                        "currency": "EUR",
                        "image": "https://img/shoe.png",
                        "displayOrder": 1,
                    }
                ]
            },
        )

    def test_a_pin_without_a_product_id_is_refused_and_sends_nothing(self) -> None:
        s = new_state()
        [r] = apply(s, PinProduct("", "Shoe", 10))
        assert r == Result(ok=False, error="pin needs a productId")
        assert take_events(s, 0.0) == [] and s.pinned == {}

    def test_at_most_the_limit_is_pinned_but_a_pinned_one_can_still_be_replaced(self) -> None:
        s = new_state()
        results = apply(s, *(PinProduct(f"p{i}", f"n{i}", i) for i in range(MAX_PINNED_PRODUCTS)))
        assert all(r.ok for r in results) and len(s.pinned) == MAX_PINNED_PRODUCTS
        take_events(s, 0.0)
        [refused] = apply(s, PinProduct("one-more", "x", 1))
        assert refused == Result(ok=False, error=f"at most {MAX_PINNED_PRODUCTS} products can be pinned")
        assert "one-more" not in s.pinned and take_events(s, 0.0) == []
        [replaced] = apply(s, PinProduct("p7", "renamed", 8))
        assert replaced.ok and s.pinned["p7"]["name"] == "renamed" and len(s.pinned) == MAX_PINNED_PRODUCTS

    def test_unpin_answers_its_event_and_an_unknown_product_is_refused(self) -> None:
        s = new_state()
        apply(s, PinProduct("p1", "Shoe", 10), PinProduct("p2", "Hat", 5))
        take_events(s, 0.0)
        [r] = apply(s, UnpinProduct("p1"))
        [event] = take_events(s, 0.0)
        assert r == Result(ok=True, seq=event.seq)
        assert [p["productId"] for p in event.body["pinnedProducts"]] == ["p2"]
        [unknown] = apply(s, UnpinProduct("p1"))
        assert unknown == Result(ok=False, error="product p1 is not pinned") and take_events(s, 0.0) == []
