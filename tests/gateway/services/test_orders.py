"""The order service against the real embedded database: all or nothing,
idempotent with a key, prices from the catalogue and the sale, status changes
that return stock once."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from core import order_rules as rules
from core.commands import FlashSaleChanged
from gateway.rest.orders import OrderIn, order_request
from gateway.security.credentials import Claims
from gateway.services.errors import CONFLICT, FORBIDDEN, NOT_FOUND, ServiceError
from gateway.services.orders import OrderLine, OrderRequest, OrderService
from persistence.flash_sales import FlashSaleStore
from persistence.orders import CREATING, OrderStore
from persistence.payments import PaymentStore
from persistence.products import ProductStore
from runtime.clock import iso, now
from tests.gateway.services.conftest import Live, new_product, stock_of

ANN = Claims(user_id="a" * 24, email="ann@example.com", role="customer", name="Ann")
BOB = Claims(user_id="b" * 24, email="bob@example.com", role="customer", name="Bob")
ADMIN = Claims(user_id="c" * 24, email="admin@example.com", role="admin", name="Admin")


@pytest.fixture
def service(db: AsyncDatabase, live: Live, products: ProductStore) -> OrderService:
    return OrderService(
        OrderStore(db), products, FlashSaleStore(db), PaymentStore(db), live.streams, live.directory, "EUR"
    )


def lines(*items: tuple[str, int]) -> OrderRequest:
    return OrderRequest(items=tuple(OrderLine(pid, qty) for pid, qty in items))


def test_the_idempotency_digest_is_the_one_of_the_request_body() -> None:
    """Orders stored before the service hashed their REST body: a retry must still match."""
    body = OrderIn.model_validate(
        {
            "items": [
                {"productId": "d" * 24, "quantity": 2, "saleId": "e" * 24},
                {"productId": "f" * 24, "quantity": 1},
            ],
            "streamId": "1" * 24,
            "note": "ring twice",
            "total": "0.01",
        }
    )
    as_before = hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    assert order_request(body).digest() == as_before
    assert order_request(body.model_copy(update={"note": "ring once"})).digest() != as_before


async def test_an_order_is_priced_from_the_catalogue_and_takes_stock(
    service: OrderService, products: ProductStore
) -> None:
    lamp = await new_product(products, price_minor=1230, stock=5)
    bulb = await new_product(products, price_minor=400, name="Bulb", images=[], stock=5)
    placed = await service.place(ANN, lines((lamp["_id"], 2), (bulb["_id"], 3)))
    order = placed.order
    assert not placed.replayed
    assert (order["status"], order["userId"], order["units"], order["totalMinor"]) == (
        rules.PENDING,
        ANN.user_id,
        5,
        2 * 1230 + 3 * 400,
    )
    assert [(i["name"], i["image"], i["unitPriceMinor"]) for i in order["items"]] == [
        ("Lamp", "https://cdn.example.com/lamp.jpg", 1230),
        ("Bulb", None, 400),
    ]
    assert [await stock_of(products, p["_id"]) for p in (lamp, bulb)] == [3, 2]
    assert await service.orders.get(order["_id"]) == order  # durable before answered


async def test_a_line_that_cannot_be_had_gives_everything_back(service: OrderService, products: ProductStore) -> None:
    lamp = await new_product(products, stock=5)
    bulb = await new_product(products, name="Bulb", stock=1)
    with pytest.raises(ServiceError) as refused:
        await service.place(ANN, lines((lamp["_id"], 2), (bulb["_id"], 2)))
    assert (refused.value.code, refused.value.message) == (CONFLICT, "Only 1 of 'Bulb' left: order fewer")
    assert [await stock_of(products, p["_id"]) for p in (lamp, bulb)] == [5, 1]
    assert (
        await service.orders.count({}) == 0 and await service.orders.list({"status": CREATING}, skip=0, limit=5) == []
    )


async def test_unknown_products_and_streams_are_not_found(service: OrderService, products: ProductStore) -> None:
    with pytest.raises(ServiceError) as product:
        await service.place(ANN, lines(("9" * 24, 1)))
    lamp = await new_product(products)
    with pytest.raises(ServiceError) as stream:
        await service.place(ANN, OrderRequest(items=(OrderLine(lamp["_id"], 1),), stream_id="8" * 24))
    assert (product.value.code, product.value.message) == (NOT_FOUND, f"Product {'9' * 24} does not exist")
    assert (stream.value.code, stream.value.message) == (NOT_FOUND, f"Stream {'8' * 24} does not exist")


async def test_a_key_replays_the_first_order_and_refuses_another_request(
    service: OrderService, products: ProductStore
) -> None:
    lamp = await new_product(products, stock=5)
    first = await service.place(ANN, lines((lamp["_id"], 1)), "key-1")
    again = await service.place(ANN, lines((lamp["_id"], 1)), "key-1")
    assert again.replayed and again.order["_id"] == first.order["_id"]
    with pytest.raises(ServiceError) as other:
        await service.place(ANN, lines((lamp["_id"], 2)), "key-1")
    assert other.value.code == CONFLICT and "different order" in other.value.message
    bobs = await service.place(BOB, lines((lamp["_id"], 1)), "key-1")  # a key is the customer's
    assert not bobs.replayed
    assert await stock_of(products, lamp["_id"]) == 3


async def test_concurrent_requests_with_one_key_take_stock_once(service: OrderService, products: ProductStore) -> None:
    lamp = await new_product(products, stock=50)
    outcomes = await asyncio.gather(
        *(service.place(ANN, lines((lamp["_id"], 1)), "race") for _ in range(8)), return_exceptions=True
    )
    placed = [o for o in outcomes if not isinstance(o, BaseException)]
    retry = [o for o in outcomes if isinstance(o, ServiceError)]
    assert len(placed) + len(retry) == 8 and all(e.retry_after == 1 for e in retry)
    assert len({p.order["_id"] for p in placed}) == 1 and sum(not p.replayed for p in placed) == 1
    assert await stock_of(products, lamp["_id"]) == 49


async def test_a_flash_sale_line_sells_at_the_sale_price_within_the_limit_and_tells_the_stream(
    service: OrderService, products: ProductStore, live: Live, db: AsyncDatabase
) -> None:
    stream = await live.stream()
    lamp = await new_product(products, price_minor=5000, stock=30)
    sale = await FlashSaleStore(db).create(
        stream_id=stream,
        product_id=lamp["_id"],
        product_name="Lamp",
        price_minor=1999,
        currency="EUR",
        quantity=10,
        per_customer_limit=2,
        ends_at=iso(now() + timedelta(minutes=5)),
        created_by=ADMIN.user_id,
    )
    request = OrderRequest(items=(OrderLine(lamp["_id"], 2, sale["_id"]),))
    order = (await service.place(ANN, request)).order
    assert (order["totalMinor"], order["streamId"]) == (2 * 1999, stream)
    with pytest.raises(ServiceError) as over:
        await service.place(ANN, OrderRequest(items=(OrderLine(lamp["_id"], 1, sale["_id"]),)))
    assert over.value.message == "This flash sale allows 2 per customer; you have 2"
    stored = await FlashSaleStore(db).get(sale["_id"])
    assert stored is not None and stored["remaining"] == 8
    await asyncio.sleep(0.05)  # the stream is told after the answer, best effort
    changed = [c for c in live.actors[stream].commands if isinstance(c, FlashSaleChanged)]
    assert [c.sale["remaining"] for c in changed] == [8]


async def test_cancelling_returns_stock_once_and_customers_only_cancel(
    service: OrderService, products: ProductStore
) -> None:
    lamp = await new_product(products, stock=5)
    order = (await service.place(ANN, lines((lamp["_id"], 2)))).order
    with pytest.raises(ServiceError) as forbidden:
        await service.change_status(ANN, order["_id"], rules.CONFIRMED)
    with pytest.raises(ServiceError) as hidden:
        await service.change_status(BOB, order["_id"], rules.CANCELLED)
    assert (forbidden.value.code, hidden.value.code) == (FORBIDDEN, NOT_FOUND)
    assert (await service.change_status(ANN, order["_id"], rules.CANCELLED))["status"] == rules.CANCELLED
    with pytest.raises(ServiceError) as twice:
        await service.change_status(ADMIN, order["_id"], rules.CANCELLED)
    assert twice.value.code == CONFLICT
    assert await stock_of(products, lamp["_id"]) == 5


async def test_admins_see_every_order_customers_their_own(service: OrderService, products: ProductStore) -> None:
    lamp = await new_product(products)
    order: dict[str, Any] = (await service.place(ANN, lines((lamp["_id"], 1)))).order
    assert (await service.get(ADMIN, order["_id"]))["_id"] == (await service.get(ANN, order["_id"]))["_id"]
    with pytest.raises(ServiceError) as hidden:
        await service.get(BOB, order["_id"])
    assert (hidden.value.code, hidden.value.message) == (NOT_FOUND, f"Order {order['_id']} does not exist")


async def test_an_order_totalling_ten_billion_units_or_more_is_refused_before_taking_stock(
    service: OrderService, products: ProductStore
) -> None:
    """No amount shown reaches ten billion units: every one is then written exactly as a JSON number (#15)."""
    dear = await new_product(products, price_minor=999_999_999_999, stock=5)  # 9 999 999 999.99 EUR
    with pytest.raises(ServiceError) as refused:
        await service.place(ANN, lines((dear["_id"], 2)))
    assert refused.value.code == CONFLICT and "at most 9999999999.99 EUR" in str(refused.value)
    assert await stock_of(products, dear["_id"]) == 5
    assert (await service.place(ANN, lines((dear["_id"], 1)))).order["totalMinor"] == 999_999_999_999
