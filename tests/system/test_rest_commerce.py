"""Products, orders and payments over HTTP against the real gateway and database:
exact money, stock under real concurrency, idempotency, status transitions, payments."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.support.clients import Api
from tests.support.processes import LOGIN_RATE_PER_MINUTE, ORDER_RATE_PER_MINUTE
from tests.system.rest_support import admin_token, assert_error, new_customer, new_product

pytestmark = pytest.mark.system


async def stock_of(api: Api, product_id: str) -> int:
    return int((await api.get(f"/products/{product_id}")).json()["stock"])


async def test_products_money_is_exact_and_junk_is_refused(gateway_url: str) -> None:
    async with Api(gateway_url, await admin_token(gateway_url)) as admin, Api(gateway_url) as anon:
        p = await new_product(admin, price="19.99", stock=4)
        # Money answers as an exact JSON number beside its minor units (issue 15).
        assert (p["price"], p["priceMinor"], p["currency"], p["stock"], p["inStock"]) == (19.99, 1999, "USD", 4, True)
        assert p["image"] == "https://cdn.example.com/p.jpg"
        whole = await new_product(admin, price=5)  # a JSON integer is whole units
        assert (whole["price"], whole["priceMinor"]) == (5, 500)
        whole = await new_product(admin, price=5.0)  # the same JSON Schema integer
        assert (whole["price"], whole["priceMinor"]) == (5, 500)
        assert (await new_product(admin, price=19.99))["priceMinor"] == 1999  # a JSON number is accepted (issue 15)
        for bad in (19.999, -1, " 5", "19.999", "-1", "1e3", "abc", "", True, None, {"$gt": 0}, "12345678901234"):
            assert_error(await admin.post("/products", json={"name": "x", "price": bad, "stock": 1}), 422)
        for bad_stock in (-1, "5", 2.5, 10**9):
            assert_error(await admin.post("/products", json={"name": "x", "price": "1", "stock": bad_stock}), 422)
        assert_error(await admin.post("/products", json={"name": "x", "price": "1", "images": ["javascript:x"]}), 422)

        r = await admin.put(f"/products/{p['id']}", json={"price": "0.10", "stockDelta": 3, "name": "Renamed"})
        assert r.status_code == 200 and (r.json()["price"], r.json()["stock"], r.json()["name"]) == (
            0.10,
            7,
            "Renamed",
        )
        assert_error(await admin.put(f"/products/{p['id']}", json={"stockDelta": -8}), 409)
        assert_error(await admin.put(f"/products/{p['id']}", json={"stock": 1, "stockDelta": 1}), 422)
        r = await admin.put(f"/products/{p['id']}", json={"stock": 0})
        assert r.json()["stock"] == 0 and r.json()["inStock"] is False
        r = await anon.get(f"/products/{p['id']}")
        assert r.status_code == 200 and r.json()["price"] == 0.10
        assert (await admin.delete(f"/products/{p['id']}")).status_code == 204
        assert_error(await anon.get(f"/products/{p['id']}"), 404)
        assert_error(await admin.delete(f"/products/{p['id']}"), 404)
        assert_error(await anon.get("/products/not-an-id"), 422)

        await new_product(admin)
        r = await anon.get("/products", params={"limit": 2})
        assert r.status_code == 200 and len(r.json()) == 2 and int(r.headers["X-Total-Count"]) >= 2
        second = await anon.get("/products", params={"limit": 2, "page": 2})
        assert not {x["id"] for x in r.json()} & {x["id"] for x in second.json()}


async def test_last_items_under_real_concurrency(gateway_url: str) -> None:
    """N customers order the last K items at the same moment: exactly K orders."""
    n, k = 12, 3
    customers = await asyncio.gather(*(new_customer(gateway_url, f"race{i}") for i in range(n)))
    async with Api(gateway_url, await admin_token(gateway_url)) as admin:
        p = await new_product(admin, price="7.00", stock=k)
        apis = [Api(gateway_url, c.token) for c in customers]
        try:
            results = await asyncio.gather(
                *(api.post("/orders", json={"items": [{"productId": p["id"], "quantity": 1}]}) for api in apis)
            )
        finally:
            await asyncio.gather(*(api.__aexit__() for api in apis))
        codes = sorted(r.status_code for r in results)
        assert codes == [201] * k + [409] * (n - k), codes
        for r in results:
            if r.status_code == 409:
                assert r.json()["error"] == "conflict" and "left" in r.json()["message"]
        assert await stock_of(admin, p["id"]) == 0
        orders = (await admin.get("/orders", params={"limit": 100, "status": "pending"})).json()
        assert sum(1 for o in orders if o["items"][0]["productId"] == p["id"]) == k

        # Multi-line orders are all or nothing: the second line fails, the first line's stock comes back.
        plenty = await new_product(admin, price="1.00", stock=5)
        async with Api(gateway_url, customers[0].token) as c0:
            r = await c0.post(
                "/orders",
                json={"items": [{"productId": plenty["id"], "quantity": 2}, {"productId": p["id"], "quantity": 1}]},
            )
            assert_error(r, 409)
        assert await stock_of(admin, plenty["id"]) == 5


async def test_idempotent_order_creation(gateway_url: str) -> None:
    c = await new_customer(gateway_url, "idem")
    async with Api(gateway_url, await admin_token(gateway_url)) as admin, Api(gateway_url, c.token) as api:
        p = await new_product(admin, price="2.50", stock=100)
        body = {"items": [{"productId": p["id"], "quantity": 2}], "note": "ring twice"}
        key = uuid.uuid4().hex
        first = await api.post("/orders", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
        again = await api.post("/orders", json=body, headers={"Idempotency-Key": key})
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        # Concurrent retries of a new key: one order, whatever the timing.
        key2 = uuid.uuid4().hex
        burst = await asyncio.gather(
            *(api.post("/orders", json=body, headers={"Idempotency-Key": key2}) for _ in range(6))
        )
        assert {r.status_code for r in burst} <= {201, 409}
        ids = {r.json()["id"] for r in burst if r.status_code == 201}
        assert len(ids) == 1
        # The key is taken by another order: a conflict with what is stored, not an invalid request.
        assert_error(await api.post("/orders", json={**body, "note": "other"}, headers={"Idempotency-Key": key}), 409)
        assert_error(await api.post("/orders", json=body, headers={"Idempotency-Key": "bad key!"}), 422)
        mine = (await api.get("/orders", params={"limit": 100})).json()
        assert len(mine) == 2
        assert await stock_of(admin, p["id"]) == 96
        # Another customer using the same key gets their own order.
        other = await new_customer(gateway_url, "idem2")
        async with Api(gateway_url, other.token) as api2:
            r = await api2.post("/orders", json=body, headers={"Idempotency-Key": key})
            assert r.status_code == 201 and r.json()["id"] != first.json()["id"]


async def test_status_transitions_and_cancelling_returns_stock(gateway_url: str) -> None:
    c = await new_customer(gateway_url, "flow")
    async with Api(gateway_url, await admin_token(gateway_url)) as admin, Api(gateway_url, c.token) as api:
        p = await new_product(admin, price="3.00", stock=10)
        o = (await api.post("/orders", json={"items": [{"productId": p["id"], "quantity": 4}]})).json()
        assert (o["status"], o["total"], o["totalMinor"], o["units"]) == ("pending", 12, 1200, 4)
        assert await stock_of(admin, p["id"]) == 6
        assert (
            "allowed: cancelled, confirmed"
            in assert_error(await admin.patch(f"/orders/{o['id']}", json={"status": "shipped"}), 409)["message"]
        )
        assert_error(await admin.patch(f"/orders/{o['id']}", json={"status": "lost"}), 422)
        assert (await admin.patch(f"/orders/{o['id']}", json={"status": "confirmed"})).json()["status"] == "confirmed"
        assert_error(await api.post(f"/orders/{o['id']}/cancel"), 409)  # customers cancel only pending orders
        assert_error(await api.patch(f"/orders/{o['id']}", json={"status": "delivered"}), 403)
        r = await admin.post(f"/orders/{o['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert await stock_of(admin, p["id"]) == 10
        assert_error(await admin.post(f"/orders/{o['id']}/cancel"), 409)  # stock came back once
        assert_error(await admin.patch(f"/orders/{o['id']}", json={"status": "confirmed"}), 409)
        assert await stock_of(admin, p["id"]) == 10
        # Concurrent cancels of one order: one wins, the stock comes back once.
        o2 = (await api.post("/orders", json={"items": [{"productId": p["id"], "quantity": 5}]})).json()
        results = await asyncio.gather(*(admin.post(f"/orders/{o2['id']}/cancel") for _ in range(5)))
        assert sorted(r.status_code for r in results) == [200] + [409] * 4
        assert await stock_of(admin, p["id"]) == 10
        # The full path, then nothing more.
        o3 = (await api.post("/orders", json={"items": [{"productId": p["id"], "quantity": 1}]})).json()
        for status in ("confirmed", "shipped", "delivered"):
            assert (await admin.patch(f"/orders/{o3['id']}", json={"status": status})).json()["status"] == status
        assert_error(await admin.post(f"/orders/{o3['id']}/cancel"), 409)
        r = await admin.get("/orders", params={"status": "delivered", "userId": c.id})
        assert [x["id"] for x in r.json()] == [o3["id"]] and r.headers["X-Total-Count"] == "1"


async def test_payments(gateway_url: str) -> None:
    c = await new_customer(gateway_url, "payer")
    async with Api(gateway_url, await admin_token(gateway_url)) as admin, Api(gateway_url, c.token) as api:
        p = await new_product(admin, price="9.95", stock=50)

        async def new_order(qty: int = 2) -> dict[str, Any]:
            return dict((await api.post("/orders", json={"items": [{"productId": p["id"], "quantity": qty}]})).json())

        o = await new_order()
        assert (o["total"], o["totalMinor"]) == (19.9, 1990)
        url = f"/orders/{o['id']}/payments"
        # Well-formed, but not this order's total: a conflict with the stored order.
        assert (
            "19.90"
            in assert_error(await api.post(url, json={"method": "bank_transfer", "amount": "19.00"}), 409)["message"]
        )
        assert_error(await api.post(url, json={"method": "bank_transfer", "amount": 19.905}), 422)
        assert_error(await api.post(url, json={"method": "bank_transfer", "amount": "19.90", "currency": "EUR"}), 422)
        assert_error(await api.post(url, json={"method": "bitcoin", "amount": "19.90"}), 422)
        key = uuid.uuid4().hex
        first = await api.post(
            url, json={"method": "bank_transfer", "amount": "19.90"}, headers={"Idempotency-Key": key}
        )
        assert first.status_code == 201, first.text
        pay = first.json()
        assert (pay["status"], pay["amount"], pay["amountMinor"], pay["provider"], pay["orderId"]) == (
            "pending",
            19.9,
            1990,
            "offline",
            o["id"],
        )
        assert pay["reference"] in pay["instructions"]
        retry = await api.post(
            url, json={"method": "bank_transfer", "amount": "19.90"}, headers={"Idempotency-Key": key}
        )
        assert (
            retry.status_code == 201
            and retry.json()["id"] == pay["id"]
            and retry.headers["Idempotent-Replayed"] == "true"
        )
        assert_error(await api.post(url, json={"method": "bank_transfer", "amount": "19.90"}), 409)
        assert (await api.get(f"/orders/{o['id']}")).json()["paymentStatus"] == "pending"
        r = await admin.post(f"/payments/{pay['id']}/confirm")
        assert r.status_code == 200 and r.json()["status"] == "confirmed"
        assert (await api.get(f"/orders/{o['id']}")).json()["paymentStatus"] == "paid"
        assert_error(await admin.post(f"/payments/{pay['id']}/confirm"), 409)
        assert (
            "paid"
            in assert_error(
                await api.post(
                    url,
                    json={"method": "cash_on_delivery", "amount": "19.90"},
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                ),
                409,
            )["message"]
        )
        assert_error(await admin.post(f"/orders/{o['id']}/cancel"), 409)  # paid: no refunds here
        r = await api.get(url)
        assert [x["id"] for x in r.json()] == [pay["id"]] and r.headers["X-Total-Count"] == "1"

        # Many payments of one order at once, each with its own key: one is recorded.
        o2 = await new_order(1)
        burst = await asyncio.gather(
            *(
                api.post(
                    f"/orders/{o2['id']}/payments",
                    json={"method": "bank_transfer", "amount": "9.95"},
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
                for _ in range(6)
            )
        )
        assert sorted(r.status_code for r in burst) == [201] + [409] * 5
        # Rejected: the order can be paid again.
        rejected = next(r.json() for r in burst if r.status_code == 201)
        assert (await admin.post(f"/payments/{rejected['id']}/reject")).json()["status"] == "failed"
        assert (await api.get(f"/orders/{o2['id']}")).json()["paymentStatus"] == "unpaid"
        again = await api.post(f"/orders/{o2['id']}/payments", json={"method": "cash_on_delivery", "amount": "9.95"})
        assert again.status_code == 201
        # Cash on delivery is confirmed when the order is delivered.
        for status in ("confirmed", "shipped", "delivered"):
            await admin.patch(f"/orders/{o2['id']}", json={"status": status})
        assert (await api.get(f"/payments/{again.json()['id']}")).json()["status"] == "confirmed"
        assert (await api.get(f"/orders/{o2['id']}")).json()["paymentStatus"] == "paid"
        # Cancelling an order with a pending payment cancels the payment.
        o3 = await new_order(1)
        p3 = (await api.post(f"/orders/{o3['id']}/payments", json={"method": "bank_transfer", "amount": "9.95"})).json()
        assert (await api.post(f"/orders/{o3['id']}/cancel")).status_code == 200
        assert (await api.get(f"/payments/{p3['id']}")).json()["status"] == "cancelled"
        assert_error(
            await api.post(f"/orders/{o3['id']}/payments", json={"method": "bank_transfer", "amount": "9.95"}), 409
        )
        r = await api.get("/payments", params={"status": "confirmed"})
        assert {x["id"] for x in r.json()} == {pay["id"], again.json()["id"]}


async def until_limited(send: Callable[[], Awaitable[Any]], per_minute: int) -> tuple[list[int], Any]:
    """Requests until one is refused with 429: the statuses before it, and the refusal. A bucket of
    `per_minute` lets that many through at once, plus what refills while they are served (a loaded
    machine serves them slower, so a few more may pass); more than that is a limit that does not hold."""
    began = time.monotonic()
    codes: list[int] = []
    while True:
        r = await send()
        if r.status_code == 429:
            return codes, r
        codes.append(r.status_code)
        refilled = math.ceil((time.monotonic() - began) * per_minute / 60)
        assert len(codes) <= per_minute + refilled, f"{len(codes)} requests and no 429"


async def test_rate_limits_answer_429(gateway_url: str) -> None:
    nobody = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    async with Api(gateway_url) as anon:
        codes, r = await until_limited(
            lambda: anon.post("/auth/login", json={"email": nobody, "password": "x"}), LOGIN_RATE_PER_MINUTE
        )
        assert len(codes) >= LOGIN_RATE_PER_MINUTE and set(codes) == {401}
        body = assert_error(r, 429)
        assert body["error"] == "too_many_requests" and int(r.headers["Retry-After"]) >= 1
        # Another email from the same address is not held back.
        assert (await anon.post("/auth/login", json={"email": "x" + nobody, "password": "x"})).status_code == 401
    c = await new_customer(gateway_url, "greedy")
    async with Api(gateway_url, c.token) as api:
        missing = {"items": [{"productId": "0" * 24, "quantity": 1}]}
        codes, r = await until_limited(lambda: api.post("/orders", json=missing), ORDER_RATE_PER_MINUTE)
        assert len(codes) >= ORDER_RATE_PER_MINUTE and set(codes) == {404}
        assert_error(r, 429)
        assert "Retry-After" in r.headers
