"""The order sweeper against the real embedded database and the real stores:
stranded `creating` orders give their stock back exactly once, whatever the
number of sweepers, and a saga racing a sweep ends consistent either way."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from core import order_rules as rules
from gateway.security.credentials import Claims
from gateway.services.errors import CONFLICT, ServiceError
from gateway.services.order_sweeper import OrderSweeper
from gateway.services.orders import OrderLine, OrderRequest, OrderService
from persistence.flash_sales import FlashSaleStore
from persistence.orders import CREATING, OrderStore
from persistence.payments import PaymentStore
from persistence.products import ProductStore
from runtime.clock import iso, now
from tests.gateway.services.conftest import Live, new_product, stock_of

# The embedded server compares time strings to the second in `find` filters: a sweep with a
# tiny timeout waits this long after the order was created, so the order is older whatever the server.
OLDER = 1.1

ANN = Claims(user_id="a" * 24, email="ann@example.com", role="customer", name="Ann")


def sweeper(db: AsyncDatabase, name: str, timeout_seconds: float = 60.0, batch: int = 100) -> OrderSweeper:
    return OrderSweeper(
        OrderStore(db),
        ProductStore(db),
        FlashSaleStore(db),
        timeout_seconds=timeout_seconds,
        interval_seconds=1.0,
        name=name,
        batch=batch,
    )


def service(db: AsyncDatabase, live: Live, products: ProductStore, hold: float = 0.0) -> OrderService:
    return OrderService(
        OrderStore(db),
        products,
        FlashSaleStore(db),
        PaymentStore(db),
        live.streams,
        live.directory,
        "EUR",
        test_hold_seconds=hold,
    )


async def strand(
    db: AsyncDatabase,
    lines: list[tuple[dict[str, Any], int]],
    taken: int,
    age_s: float = 120.0,
    sale: dict[str, Any] | None = None,
) -> str:
    """What a gateway that died mid-saga leaves: the first `taken` lines' stock
    (and, for the first line, `sale`'s units and claim) taken, and a `creating`
    order that says so, created `age_s` ago."""
    products, sales = ProductStore(db), FlashSaleStore(db)
    items = []
    for n, (product, qty) in enumerate(lines, start=1):
        sale_id = sale["_id"] if sale is not None and n == 1 else None
        if n <= taken:
            if sale_id is not None:
                assert await sales.claim(sale_id, ANN.user_id, qty, 100)
                assert await sales.take(sale_id, qty) is not None
            assert await products.take_stock(product["_id"], qty) is not None
        items.append({"productId": product["_id"], "name": product["name"], "quantity": qty, "saleId": sale_id})
    created = iso(now() - timedelta(seconds=age_s))
    order_id = str(ObjectId())
    await OrderStore(db).insert(
        {
            "_id": order_id,
            "userId": ANN.user_id,
            "items": items,
            "status": CREATING,
            "taken": taken,
            "idemKey": f"{ANN.user_id}:{order_id}",
            "createdAt": created,
            "updatedAt": created,
        }
    )
    return order_id


async def test_two_sweepers_racing_give_each_stranded_order_back_exactly_once(
    db: AsyncDatabase, products: ProductStore
) -> None:
    lamp = await new_product(products, stock=100)
    bulb = await new_product(products, name="Bulb", stock=100)
    stranded = [await strand(db, [(lamp, 2), (bulb, 3)], taken=2) for _ in range(15)]
    half = [await strand(db, [(lamp, 1), (bulb, 1)], taken=1) for _ in range(5)]  # died before line 2
    young = await strand(db, [(lamp, 4)], taken=1, age_s=0)  # a saga that may still be running
    assert (await stock_of(products, lamp["_id"]), await stock_of(products, bulb["_id"])) == (100 - 30 - 5 - 4, 55)

    a, b = sweeper(db, "gw-a"), sweeper(db, "gw-b")
    won_a, won_b = await asyncio.gather(a.sweep_once(), b.sweep_once())
    won = [o["_id"] for o in won_a + won_b]
    assert sorted(won) == sorted(stranded + half)  # each claimed once, by one of them
    assert not {o["_id"] for o in won_a} & {o["_id"] for o in won_b}
    assert (await stock_of(products, lamp["_id"]), await stock_of(products, bulb["_id"])) == (96, 100)
    orders = OrderStore(db)
    assert [await orders.get(i) for i in won] == [None] * len(won)
    assert (await orders.get(young) or {}).get("status") == CREATING  # not old enough: untouched
    assert await a.sweep_once() == [] and await b.sweep_once() == []  # nothing twice
    assert await stock_of(products, lamp["_id"]) == 96


async def test_a_stranded_flash_sale_line_gives_back_the_units_and_the_claim(
    db: AsyncDatabase, products: ProductStore, live: Live
) -> None:
    stream = await live.stream()
    lamp = await new_product(products, stock=10)
    sales = FlashSaleStore(db)
    sale = await sales.create(
        stream_id=stream,
        product_id=lamp["_id"],
        product_name="Lamp",
        price_minor=500,
        currency="EUR",
        quantity=5,
        per_customer_limit=3,
        ends_at=iso(now() + timedelta(hours=1)),
        created_by="admin",
    )
    await strand(db, [(lamp, 2)], taken=1, sale=sale)
    assert ((await sales.get(sale["_id"]) or {})["remaining"], await sales.claimed(sale["_id"], ANN.user_id)) == (3, 2)
    assert len(await sweeper(db, "gw-a").sweep_once()) == 1
    assert ((await sales.get(sale["_id"]) or {})["remaining"], await sales.claimed(sale["_id"], ANN.user_id)) == (5, 0)
    assert await stock_of(products, lamp["_id"]) == 10


async def test_a_round_claims_at_most_its_batch(db: AsyncDatabase, products: ProductStore) -> None:
    lamp = await new_product(products, stock=10)
    for _ in range(5):
        await strand(db, [(lamp, 1)], taken=1)
    s = sweeper(db, "gw-a", batch=3)
    assert len(await s.sweep_once()) == 3
    assert await stock_of(products, lamp["_id"]) == 8
    assert len(await s.sweep_once()) == 2
    assert await stock_of(products, lamp["_id"]) == 10


async def test_a_saga_that_confirms_before_the_sweep_keeps_its_order(
    db: AsyncDatabase, products: ProductStore, live: Live
) -> None:
    lamp = await new_product(products, stock=10)
    placed = await service(db, live, products, hold=0.3).place(
        ANN, OrderRequest(items=(OrderLine(lamp["_id"], 2),)), "k1"
    )
    await asyncio.sleep(OLDER)
    assert await sweeper(db, "gw-a", timeout_seconds=0.001).sweep_once() == []
    order = await OrderStore(db).get(placed.order["_id"])
    assert order is not None and order["status"] == rules.PENDING
    assert await stock_of(products, lamp["_id"]) == 8


async def wait_for_creating(orders: OrderStore, taken: int) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            found = await orders.list({"status": CREATING}, skip=0, limit=1)
            if found and found[0]["taken"] == taken:
                return found[0]
            await asyncio.sleep(0.02)


async def test_a_saga_swept_before_it_confirms_fails_cleanly_and_stock_comes_back_once(
    db: AsyncDatabase, products: ProductStore, live: Live
) -> None:
    lamp = await new_product(products, stock=10)
    bulb = await new_product(products, name="Bulb", stock=10)
    orders = OrderStore(db)
    saga = asyncio.create_task(
        service(db, live, products, hold=4).place(
            ANN, OrderRequest(items=(OrderLine(lamp["_id"], 2), OrderLine(bulb["_id"], 1))), "k1"
        )
    )
    held = await wait_for_creating(orders, taken=2)  # every line taken, confirm held
    await asyncio.sleep(OLDER)
    won = await sweeper(db, "gw-a", timeout_seconds=0.001).sweep_once()
    assert [o["_id"] for o in won] == [held["_id"]]
    with pytest.raises(ServiceError) as refused:
        await asyncio.wait_for(saga, 10)
    assert refused.value.code == CONFLICT and refused.value.retry_after == 1
    assert (await stock_of(products, lamp["_id"]), await stock_of(products, bulb["_id"])) == (10, 10)
    assert await orders.get(held["_id"]) is None
    # the key was freed: a retry places a new order
    again = await service(db, live, products).place(ANN, OrderRequest(items=(OrderLine(lamp["_id"], 2),)), "k1")
    assert not again.replayed and again.order["status"] == rules.PENDING


class SweptAfterTaking(ProductStore):
    """Runs a sweep right after the stock of the `nth` line is taken, before its progress is recorded."""

    def __init__(self, db: AsyncDatabase, sweep: OrderSweeper, nth: int) -> None:
        super().__init__(db)
        self.sweep, self.nth, self.calls = sweep, nth, 0
        self.won: list[dict[str, Any]] = []

    async def take_stock(self, product_id: str, quantity: int) -> dict[str, Any] | None:
        after = await super().take_stock(product_id, quantity)
        self.calls += 1
        if self.calls == self.nth:
            await asyncio.sleep(OLDER)
            self.won = await self.sweep.sweep_once()
        return after


async def test_a_saga_swept_between_taking_a_line_and_recording_it_gives_that_line_back_itself(
    db: AsyncDatabase, products: ProductStore, live: Live
) -> None:
    lamp = await new_product(products, stock=10)
    bulb = await new_product(products, name="Bulb", stock=10)
    racing = SweptAfterTaking(db, sweeper(db, "gw-a", timeout_seconds=0.001), nth=2)
    with pytest.raises(ServiceError) as refused:
        await service(db, live, racing).place(
            ANN, OrderRequest(items=(OrderLine(lamp["_id"], 2), OrderLine(bulb["_id"], 3)))
        )
    assert refused.value.code == CONFLICT
    assert len(racing.won) == 1 and racing.won[0]["taken"] == 1  # the sweeper gave back line 1, the saga line 2
    assert (await stock_of(products, lamp["_id"]), await stock_of(products, bulb["_id"])) == (10, 10)
    assert await OrderStore(db).count({}) == 0


async def test_the_sweeper_runs_on_its_timer_until_stopped(db: AsyncDatabase, products: ProductStore) -> None:
    lamp = await new_product(products, stock=10)
    await strand(db, [(lamp, 3)], taken=1)
    s = OrderSweeper(
        OrderStore(db), products, FlashSaleStore(db), timeout_seconds=60, interval_seconds=0.05, name="gw-a"
    )
    s.start()
    try:
        async with asyncio.timeout(10):
            while await stock_of(products, lamp["_id"]) != 10:
                await asyncio.sleep(0.05)
    finally:
        await s.stop()
    assert await stock_of(products, lamp["_id"]) == 10


async def test_a_saga_past_its_deadline_gives_back_what_it_took_itself(
    db: AsyncDatabase, products: ProductStore, live: Live
) -> None:
    lamp = await new_product(products, stock=10)
    slow = OrderService(
        OrderStore(db),
        products,
        FlashSaleStore(db),
        PaymentStore(db),
        live.streams,
        live.directory,
        "EUR",
        saga_deadline_seconds=0.5,
        test_hold_seconds=30,
    )
    with pytest.raises(ServiceError) as refused:
        await asyncio.wait_for(slow.place(ANN, OrderRequest(items=(OrderLine(lamp["_id"], 4),)), "k1"), 10)
    assert refused.value.code == CONFLICT and refused.value.retry_after == 1
    assert await stock_of(products, lamp["_id"]) == 10
    assert await OrderStore(db).count({"status": CREATING}) == 0


async def test_stopping_lets_a_round_in_progress_finish_its_orders(db: AsyncDatabase, products: ProductStore) -> None:
    lamp = await new_product(products, stock=10)
    slow_products = SlowReturns(db)
    s = OrderSweeper(
        OrderStore(db), slow_products, FlashSaleStore(db), timeout_seconds=60, interval_seconds=0.01, name="gw-a"
    )
    await strand(db, [(lamp, 3)], taken=1)
    s.start()
    await asyncio.wait_for(slow_products.returning.wait(), 10)
    await s.stop()  # in the middle of giving back
    assert await stock_of(products, lamp["_id"]) == 10
    assert await OrderStore(db).count({"status": {"$exists": True}}) == 0


class SlowReturns(ProductStore):
    def __init__(self, db: AsyncDatabase) -> None:
        super().__init__(db)
        self.returning = asyncio.Event()

    async def return_stock(self, product_id: str, quantity: int) -> None:
        self.returning.set()
        await asyncio.sleep(0.3)
        await super().return_stock(product_id, quantity)
