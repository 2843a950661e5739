"""The authorisation matrix: every REST endpoint x {anonymous, customer A,
customer B, admin}, with the exact status each must get. Plus: no body can
set what the server decides (role, price, stock, total, owner, status)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.clients import Api
from tests.system.rest_support import admin_token, email, new_customer, new_product, new_stream, stop_all_live

pytestmark = pytest.mark.system

ROLES = ("anon", "a", "b", "admin")
UNLISTED = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")}  # ops: see tests/system/test_ops.py


@dataclass
class Row:
    method: str
    template: str  # as in the OpenAPI document
    path: str
    expect: tuple[int, int, int, int]  # anon, customer A, customer B, admin
    body: Callable[[str], Any] | None = None
    params: dict[str, str] | None = None


def const(value: Any) -> Callable[[str], Any]:
    return lambda role: value


async def order(api: Api, product_id: str, qty: int = 1) -> dict[str, Any]:
    r = await api.post("/orders", json={"items": [{"productId": product_id, "quantity": qty}]})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def pay(api: Api, o: dict[str, Any], method: str = "bank_transfer") -> dict[str, Any]:
    r = await api.post(f"/orders/{o['id']}/payments", json={"method": method, "amount": o["total"]})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_authorisation_matrix(gateway_url: str) -> None:
    a, b = await new_customer(gateway_url, "a"), await new_customer(gateway_url, "b")
    async with (
        Api(gateway_url, await admin_token(gateway_url)) as admin,
        Api(gateway_url, a.token) as ca,
        Api(gateway_url, b.token) as cb,
        Api(gateway_url) as anon,
    ):
        anon.client.headers["X-Session-Id"] = f"anon-{uuid.uuid4().hex[:8]}"
        await stop_all_live(admin)
        p = await new_product(admin, price="10.00", stock=1000)
        p_pinned = await new_product(admin, price="3.00", stock=10)
        p_doomed = await new_product(admin)
        scheduled = await new_stream(admin, "matrix scheduled")
        doomed_stream = await new_stream(admin, "matrix doomed")
        live = await new_stream(admin, "matrix live", live=True)
        live2 = await new_stream(admin, "matrix live 2", live=True)
        assert (await admin.post(f"/livestreams/{live}/pin", json={"productId": p["id"]})).status_code == 200
        assert (await admin.post(f"/livestreams/{live}/pin", json={"productId": p_pinned["id"]})).status_code == 200
        r = await admin.post(
            f"/livestreams/{live}/flash-sales",
            json={"productId": p["id"], "price": "5.00", "quantity": 5, "durationSeconds": 120},
        )
        assert r.status_code == 201, r.text
        sale = r.json()["id"]
        order_a = await order(ca, p["id"])
        order_a_cancel = await order(ca, p["id"])
        order_a_pay = await order(ca, p["id"])
        pay_a = await pay(ca, await order(ca, p["id"]))
        pay_a_reject = await pay(ca, await order(ca, p["id"]))
        login_email = email("login")
        await Api(gateway_url).post("/auth/register", json={"email": login_email, "password": "long-enough-1"})

        item = {"items": [{"productId": p["id"], "quantity": 1}]}
        sale_body = {"productId": p["id"], "price": "4.00", "quantity": 1, "durationSeconds": 60}
        rows = [
            Row(
                "POST",
                "/auth/register",
                "/auth/register",
                (201, 201, 201, 201),
                body=lambda role: {"email": email(role), "password": "long-enough-1"},
            ),
            Row(
                "POST",
                "/auth/login",
                "/auth/login",
                (200, 200, 200, 200),
                body=const({"email": login_email, "password": "long-enough-1"}),
            ),
            Row("GET", "/auth/me", "/auth/me", (401, 200, 200, 200)),
            Row(
                "GET",
                "/livestreams/agora/token",
                "/livestreams/agora/token",
                (200, 200, 200, 200),
                params={"streamId": live},
            ),
            Row(
                "GET",
                "/livestreams/agora/token",
                "/livestreams/agora/token",
                (403, 403, 403, 200),
                params={"streamId": live, "role": "publisher"},
            ),
            Row("POST", "/livestreams", "/livestreams", (401, 403, 403, 201), body=const({"title": "new"})),
            Row("GET", "/livestreams", "/livestreams", (200, 200, 200, 200)),
            Row("GET", "/livestreams/active", "/livestreams/active", (200, 200, 200, 200)),
            Row("GET", "/livestreams/past", "/livestreams/past", (200, 200, 200, 200)),
            Row("GET", "/livestreams/{stream_id}", f"/livestreams/{live}", (200, 200, 200, 200)),
            Row(
                "PUT",
                "/livestreams/{stream_id}",
                f"/livestreams/{scheduled}",
                (401, 403, 403, 200),
                body=const({"title": "renamed"}),
            ),
            Row(
                "PUT",
                "/livestreams/{stream_id}",
                f"/livestreams/{live}",
                (401, 403, 403, 409),
                body=const({"title": "renamed"}),
            ),
            Row("DELETE", "/livestreams/{stream_id}", f"/livestreams/{live}", (401, 403, 403, 409)),
            Row("DELETE", "/livestreams/{stream_id}", f"/livestreams/{doomed_stream}", (401, 403, 403, 204)),
            Row("POST", "/livestreams/{stream_id}/start", f"/livestreams/{live}/start", (401, 403, 403, 200)),
            Row("POST", "/livestreams/{stream_id}/stop", f"/livestreams/{live2}/stop", (401, 403, 403, 200)),
            Row("POST", "/livestreams/{stream_id}/view", f"/livestreams/{live}/view", (201, 201, 201, 201)),
            Row("GET", "/livestreams/{stream_id}/chat", f"/livestreams/{live}/chat", (200, 200, 200, 200)),
            Row("POST", "/livestreams/{stream_id}/like", f"/livestreams/{live}/like", (200, 200, 200, 200)),
            Row(
                "POST",
                "/livestreams/{stream_id}/pin",
                f"/livestreams/{live}/pin",
                (401, 403, 403, 200),
                body=const({"productId": p["id"], "displayOrder": 1}),
            ),
            Row(
                "DELETE",
                "/livestreams/{stream_id}/pin/{product_id}",
                f"/livestreams/{live}/pin/{p_pinned['id']}",
                (401, 403, 403, 204),
            ),
            Row("GET", "/livestreams/{stream_id}/analytics", f"/livestreams/{live}/analytics", (401, 403, 403, 200)),
            Row(
                "POST",
                "/livestreams/{stream_id}/flash-sales",
                f"/livestreams/{live}/flash-sales",
                (401, 403, 403, 409),
                body=const(sale_body),
            ),  # 409: this product has a running sale
            Row(
                "GET", "/livestreams/{stream_id}/flash-sales", f"/livestreams/{live}/flash-sales", (200, 200, 200, 200)
            ),
            Row(
                "GET",
                "/livestreams/{stream_id}/flash-sales/{sale_id}",
                f"/livestreams/{live}/flash-sales/{sale}",
                (200, 200, 200, 200),
            ),
            Row(
                "POST",
                "/livestreams/{stream_id}/flash-sales/{sale_id}/end",
                f"/livestreams/{live}/flash-sales/{sale}/end",
                (401, 403, 403, 200),
            ),
            Row(
                "POST",
                "/products",
                "/products",
                (401, 403, 403, 201),
                body=const({"name": "x", "price": "1.00", "stock": 1}),
            ),
            Row("GET", "/products", "/products", (200, 200, 200, 200)),
            Row("GET", "/products/{product_id}", f"/products/{p['id']}", (200, 200, 200, 200)),
            Row(
                "PUT",
                "/products/{product_id}",
                f"/products/{p['id']}",
                (401, 403, 403, 200),
                body=const({"description": "better"}),
            ),
            Row("DELETE", "/products/{product_id}", f"/products/{p_doomed['id']}", (401, 403, 403, 204)),
            Row("POST", "/orders", "/orders", (401, 201, 201, 201), body=const(item)),
            Row("GET", "/orders", "/orders", (401, 200, 200, 200)),
            Row("GET", "/orders/{order_id}", f"/orders/{order_a['id']}", (401, 200, 404, 200)),
            Row(
                "PATCH",
                "/orders/{order_id}",
                f"/orders/{order_a['id']}",
                (401, 403, 404, 200),
                body=const({"status": "confirmed"}),
            ),
            Row("POST", "/orders/{order_id}/cancel", f"/orders/{order_a_cancel['id']}/cancel", (401, 200, 404, 409)),
            Row(
                "POST",
                "/orders/{order_id}/payments",
                f"/orders/{order_a_pay['id']}/payments",
                (401, 201, 404, 409),
                body=const({"method": "cash_on_delivery", "amount": order_a_pay["total"]}),
            ),
            Row("GET", "/orders/{order_id}/payments", f"/orders/{order_a_pay['id']}/payments", (401, 200, 404, 200)),
            Row("GET", "/payments", "/payments", (401, 200, 200, 200)),
            Row("GET", "/payments/{payment_id}", f"/payments/{pay_a['id']}", (401, 200, 404, 200)),
            Row("POST", "/payments/{payment_id}/confirm", f"/payments/{pay_a['id']}/confirm", (401, 403, 403, 200)),
            Row(
                "POST", "/payments/{payment_id}/reject", f"/payments/{pay_a_reject['id']}/reject", (401, 403, 403, 200)
            ),
            Row("GET", "/analytics/daily", "/analytics/daily", (401, 403, 403, 200)),
            # Moderation: moderators and admins (no customer), and role changes: admins only.
            Row("GET", "/livestreams/{stream_id}/moderation", f"/livestreams/{live}/moderation", (401, 403, 403, 200)),
            Row(
                "POST",
                "/livestreams/{stream_id}/moderation/delete-message",
                f"/livestreams/{live}/moderation/delete-message",
                (401, 403, 403, 404),
                body=const({"messageId": 10**9}),
            ),
            Row(
                "POST",
                "/livestreams/{stream_id}/moderation/mute",
                f"/livestreams/{live}/moderation/mute",
                (401, 403, 403, 200),
                body=const({"sessionId": "someone", "durationSeconds": 5}),
            ),
            Row(
                "POST",
                "/livestreams/{stream_id}/moderation/unmute",
                f"/livestreams/{live}/moderation/unmute",
                (401, 403, 403, 200),
                body=const({"sessionId": "someone"}),
            ),
            Row(
                "PUT",
                "/livestreams/{stream_id}/moderation/blocked-words",
                f"/livestreams/{live}/moderation/blocked-words",
                (401, 403, 403, 200),
                body=const({"words": []}),
            ),
            Row(
                "PUT",
                "/livestreams/{stream_id}/moderation/slow-mode",
                f"/livestreams/{live}/moderation/slow-mode",
                (401, 403, 403, 200),
                body=const({"seconds": 0}),
            ),
            Row(
                "PATCH",
                "/users/{user_id}/role",
                f"/users/{b.id}/role",
                (401, 403, 403, 200),
                body=const({"role": "customer"}),
            ),
        ]

        # Every endpoint of the OpenAPI document is in the matrix.
        spec = (await anon.get("/openapi.json")).json()
        documented = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}
        assert documented - UNLISTED == {(r.method, r.template) for r in rows}

        clients = {"anon": anon, "a": ca, "b": cb, "admin": admin}
        failures = []
        for row in rows:
            for role, expected in zip(ROLES, row.expect, strict=True):
                kw: dict[str, Any] = {}
                if row.body is not None:
                    kw["json"] = row.body(role)
                if row.params is not None:
                    kw["params"] = row.params
                r = await clients[role].request(row.method, row.path, **kw)
                if r.status_code != expected:
                    failures.append(f"{row.method} {row.path} as {role}: {r.status_code} != {expected}: {r.text[:200]}")
                elif r.status_code >= 400:
                    body = r.json()
                    assert body["status"] == r.status_code and body["message"], body
        assert not failures, "\n".join(failures)

        # What each customer sees is theirs alone.
        mine = (await ca.get("/orders", params={"limit": 100})).json()
        assert mine and {o["userId"] for o in mine} == {a.id}
        theirs = (await cb.get("/orders", params={"limit": 100})).json()
        assert {o["userId"] for o in theirs} == {b.id}
        assert not {o["id"] for o in mine} & {o["id"] for o in theirs}
        assert {x["userId"] for x in (await ca.get("/payments")).json()} == {a.id}
        assert (await cb.get("/payments")).json() == []
        assert {o["userId"] for o in (await cb.get("/orders", params={"userId": a.id})).json()} == {b.id}
        assert len((await admin.get("/orders", params={"userId": a.id, "limit": 100})).json()) == len(mine)
        await admin.post(f"/livestreams/{live}/stop")


async def test_bodies_cannot_set_what_the_server_decides(gateway_url: str) -> None:
    a, b = await new_customer(gateway_url, "a"), await new_customer(gateway_url, "b")
    async with Api(gateway_url, await admin_token(gateway_url)) as admin, Api(gateway_url, a.token) as ca:
        p = await new_product(admin, price="12.50", stock=5, currency="EUR", id="0" * 24, createdAt="1999")
        assert p["currency"] == "USD" and p["id"] != "0" * 24 and p["createdAt"] != "1999"
        r = await ca.post(
            "/orders",
            json={
                "items": [{"productId": p["id"], "quantity": 2, "price": "0.01", "unitPrice": "0.01"}],
                "total": "0.01",
                "totalMinor": 1,
                "userId": b.id,
                "status": "delivered",
                "paymentStatus": "paid",
                "currency": "EUR",
            },
        )
        assert r.status_code == 201, r.text
        o = r.json()
        assert (o["total"], o["userId"], o["status"], o["paymentStatus"], o["currency"]) == (
            25,
            a.id,
            "pending",
            "unpaid",
            "USD",
        )
        assert o["items"][0]["unitPrice"] == 12.5
        assert (await ca.put(f"/products/{p['id']}", json={"stock": 999, "price": "0.01"})).status_code == 403
        assert (await admin.get(f"/products/{p['id']}")).json()["stock"] == 3
        r = await ca.post(
            f"/orders/{o['id']}/payments",
            json={"method": "bank_transfer", "amount": "25.00", "status": "confirmed", "userId": b.id},
        )
        assert r.status_code == 201 and r.json()["status"] == "pending" and r.json()["userId"] == a.id
        assert (await ca.get(f"/orders/{o['id']}")).json()["paymentStatus"] == "pending"
        r = await Api(gateway_url).post(
            "/auth/register", json={"email": email(), "password": "long-enough-1", "role": "admin"}
        )
        assert r.json()["user"]["role"] == "customer"
        sid = await new_stream(admin, "owned")
        r = await admin.put(f"/livestreams/{sid}", json={"status": "ended", "hostId": b.id, "likes": 99, "title": "t2"})
        assert r.status_code == 200
        assert (r.json()["status"], r.json()["hostId"], r.json()["likes"], r.json()["title"]) == (
            "scheduled",
            (await admin.get(f"/livestreams/{sid}")).json()["hostId"],
            0,
            "t2",
        )
        assert r.json()["hostId"] != b.id
