"""The commerce stores against the real embedded database: atomic stock, flash
sale caps and per-customer limits under concurrency, idempotency keys, one
live payment per order, and the analytics aggregations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from persistence.analytics import AnalyticsStore
from persistence.flash_sales import FlashSaleStore
from persistence.orders import ABANDONED, CREATING, DuplicateIdempotencyKey, OrderStore
from persistence.payments import CANCELLED, PENDING, PaymentExists, PaymentStore
from persistence.products import ProductStore
from tests.support.databases import found

FUTURE, PAST = "2999-01-01T00:00:00.000Z", "2000-01-01T00:00:00.000Z"


async def new_sale(
    sales: FlashSaleStore, product_id: str, *, quantity: int, limit: int, ends_at: str
) -> dict[str, Any]:
    """A sale in stream "s" of `product_id` at 1.00 USD."""
    return await sales.create(
        stream_id="s",
        product_id=product_id,
        product_name=product_id.upper(),
        price_minor=100,
        currency="USD",
        quantity=quantity,
        per_customer_limit=limit,
        ends_at=ends_at,
        created_by="a",
    )


async def test_stock_is_taken_atomically(db: AsyncDatabase) -> None:
    products = ProductStore(db)
    p = await products.create(name="Lamp", description="", price_minor=1999, currency="USD", stock=5, images=[])
    results = await asyncio.gather(*(products.take_stock(p["_id"], 1) for _ in range(20)))
    assert sum(r is not None for r in results) == 5
    assert found(await products.get(p["_id"]))["stock"] == 0
    assert await products.take_stock(p["_id"], 1) is None
    await products.return_stock(p["_id"], 2)
    assert await products.update(p["_id"], {}, stock_delta=-3) is None
    assert found(await products.update(p["_id"], {"name": "L"}, stock_delta=-2))["stock"] == 0
    assert await products.delete(p["_id"]) and await products.get(p["_id"]) is None
    assert await products.take_stock(p["_id"], 0) is None


async def test_flash_sale_cap_and_per_customer_limit_under_concurrency(db: AsyncDatabase) -> None:
    sales = FlashSaleStore(db)
    sale = await new_sale(sales, "p", quantity=6, limit=2, ends_at=FUTURE)
    claims = await asyncio.gather(*(sales.claim(sale["_id"], "alice", 1, 2) for _ in range(7)))
    assert sum(claims) == 2 and await sales.claimed(sale["_id"], "alice") == 2
    assert not await sales.claim(sale["_id"], "bob", 3, 2)
    taken = await asyncio.gather(*(sales.take(sale["_id"], 1) for _ in range(10)))
    assert sum(t is not None for t in taken) == 6
    versions = sorted(t["version"] for t in taken if t is not None)
    assert versions == list(range(2, 8))  # every stored change is a new version
    assert found(await sales.get(sale["_id"]))["remaining"] == 0
    await sales.unclaim(sale["_id"], "alice", 1)
    assert await sales.claim(sale["_id"], "alice", 1, 2)

    over = await new_sale(sales, "q", quantity=5, limit=5, ends_at=PAST)
    assert await sales.take(over["_id"], 1) is None  # past its end time
    ended = await new_sale(sales, "r", quantity=5, limit=5, ends_at=FUTURE)
    assert await sales.running_for("s", "r") is not None
    assert found(await sales.end(ended["_id"], "admin"))["status"] == "ended"
    assert await sales.end(ended["_id"], "admin") is None
    assert await sales.take(ended["_id"], 1) is None and await sales.running_for("s", "r") is None


async def test_idempotency_keys_and_one_live_payment(db: AsyncDatabase) -> None:
    orders, payments = OrderStore(db), PaymentStore(db)
    base = {"userId": "u", "items": [], "status": "pending", "createdAt": "t", "updatedAt": "t"}
    await orders.insert({**base, "_id": "o1", "idemKey": "u:k"})
    await orders.insert({**base, "_id": "o2"})
    await orders.insert({**base, "_id": "o3"})  # no key: never collides
    with pytest.raises(DuplicateIdempotencyKey):
        await orders.insert({**base, "_id": "o4", "idemKey": "u:k"})
    assert found(await orders.by_idempotency_key("u:k"))["_id"] == "o1"
    moved = await asyncio.gather(*(orders.transition("o1", "pending", "cancelled") for _ in range(5)))
    assert sum(m is not None for m in moved) == 1

    pay = {"orderId": "o2", "userId": "u", "status": PENDING, "createdAt": "t"}
    results = await asyncio.gather(
        *(payments.insert({**pay, "_id": f"p{i}"}) for i in range(5)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1 and all(isinstance(r, PaymentExists) for r in results if r is not None)
    live = await payments.live_for_order("o2")
    assert live is not None
    assert found(await payments.transition(live["_id"], PENDING, CANCELLED))["slot"] != "o2"
    await payments.insert({**pay, "_id": "p-again"})  # the order can be paid again
    await payments.insert({**pay, "_id": "p-idem", "orderId": "o3", "idemKey": "u:x"})
    with pytest.raises(PaymentExists):  # another order, the same idempotency key
        await payments.insert({**pay, "_id": "p-idem2", "orderId": "o1", "idemKey": "u:x"})


async def test_analytics_aggregations(db: AsyncDatabase) -> None:
    await db.viewer_samples.insert_many(
        [
            {"_id": "s:1", "streamId": "s", "minute": "2026-01-01T10:01", "viewers": 3},
            {"_id": "s:2", "streamId": "s", "minute": "2026-01-01T10:02", "viewers": 5},
            {"_id": "t:2", "streamId": "t", "minute": "2026-01-01T10:02", "viewers": 4},
        ]
    )
    await db.stream_viewers.insert_many(
        [{"_id": f"s:{x}", "streamId": "s", "sessionId": x, "firstSeenAt": "2026-01-01T10:01:00.000Z"} for x in "abcd"]
    )
    await db.stream_views.insert_many([{"streamId": "s", "at": "2026-01-01T10:01:30.000Z"} for _ in range(3)])
    await db.chat_messages.insert_many(
        [{"streamId": "s", "seq": i, "timestamp": f"2026-01-01T10:0{1 + i % 2}:00.000Z"} for i in range(5)]
    )
    await db.streams.insert_many(
        [
            {"_id": "s", "status": "ended", "startTime": "2026-01-01T10:00:00.000Z", "likes": 7},
            {"_id": "t", "status": "live", "startTime": "2026-01-02T10:00:00.000Z"},
        ]
    )
    order = {"streamId": "s", "currency": "USD", "createdAt": "2026-01-01T10:02:10.000Z"}
    await db.orders.insert_many(
        [
            {**order, "userId": "u1", "units": 2, "totalMinor": 1000, "status": "pending"},
            {**order, "userId": "u1", "units": 1, "totalMinor": 250, "status": "delivered"},
            {**order, "userId": "u2", "units": 1, "totalMinor": 999, "status": "confirmed"},
            {**order, "userId": "u3", "units": 9, "totalMinor": 9999, "status": "cancelled"},
            {**order, "userId": "u4", "units": 9, "totalMinor": 9999, "status": "creating"},
            {**order, "userId": "u5", "units": 9, "totalMinor": 9999, "status": "pending", "currency": "EUR"},
        ]
    )
    a = AnalyticsStore(db)
    assert await a.stream_totals("s", "USD") == {
        "uniqueViewers": 4,
        "views": 3,
        "chatMessages": 5,
        "orders": 3,
        "units": 4,
        "revenueMinor": 2249,
        "buyers": 2,
        "sampledPeakViewers": 5,
    }
    minutes = await a.stream_minutes("s", "USD")
    assert [(m["minute"], m["viewers"], m["chatMessages"], m["orders"]) for m in minutes] == [
        ("2026-01-01T10:01", 3, 3, 0),
        ("2026-01-01T10:02", 5, 2, 3),
    ]
    days = await a.days("USD")
    assert [d["day"] for d in days] == ["2026-01-01", "2026-01-02"]
    d1 = days[0]
    assert (
        d1["streams"],
        d1["peakViewers"],
        d1["uniqueViewers"],
        d1["views"],
        d1["likes"],
        d1["chatMessages"],
        d1["orders"],
        d1["units"],
        d1["revenueMinor"],
        d1["buyers"],
    ) == (1, 9, 4, 3, 7, 5, 3, 4, 2249, 2)
    assert [d["day"] for d in await a.days("USD", "2026-01-02", "2026-01-02")] == ["2026-01-02"]
    assert await a.days("USD", "2030-01-01") == []


async def test_a_stranded_order_is_claimed_once_and_then_hidden(db: AsyncDatabase) -> None:
    orders = OrderStore(db)
    old, young, cutoff = "2026-01-01T10:00:00.000Z", "2026-01-01T12:00:00.000Z", "2026-01-01T11:00:00.000Z"
    base = {"userId": "u", "items": [], "status": CREATING, "taken": 0, "updatedAt": old}
    await orders.insert({**base, "_id": "o1", "createdAt": old, "idemKey": "u:k"})
    await orders.insert({**base, "_id": "o2", "createdAt": young})
    assert await orders.progress("o1", 1)
    assert await orders.stranded_ids(cutoff, 10) == ["o1"]
    assert await orders.claim_stranded("o2", cutoff, "gw-a") is None  # too young
    claims = await asyncio.gather(*(orders.claim_stranded("o1", cutoff, f"gw-{i}") for i in range(6)))
    won = [c for c in claims if c is not None]
    assert len(won) == 1 and won[0]["status"] == ABANDONED and won[0]["taken"] == 1 and "idemKey" not in won[0]
    # the saga that owned it can no longer record progress, confirm, or delete it
    assert not await orders.progress("o1", 2)
    assert await orders.transition("o1", CREATING, "pending") is None
    assert not await orders.delete_creating("o1")
    assert await orders.list({}, skip=0, limit=10) == [] and await orders.count({}) == 0  # never listed
    assert await orders.by_idempotency_key("u:k") is None  # the key is free again
    await orders.delete_abandoned("o1")
    assert await orders.get("o1") is None and await orders.stranded_ids(cutoff, 10) == []
