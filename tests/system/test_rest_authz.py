"""The authorisation matrix: every REST operation x {anonymous, customer A,
customer B, moderator, admin}, with the exact status each must get, derived
from one table that states the policy (`ACCESS`: one line per operation, so a
change of policy is a one-line diff). Plus: no body can set what the server
decides (role, price, stock, total, owner, status)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.clients import Api, login, register_customer
from tests.system.rest_support import admin_token, email, new_customer, new_product, new_stream, stop_all_live

pytestmark = pytest.mark.system

ROLES = ("anon", "a", "b", "moderator", "admin")  # customer A owns the orders and payments below; B is another
UNLISTED = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")}  # ops: see tests/system/test_ops.py
OK = 0  # allowed: the row says what an allowed call answers (its success, or a conflict with the state)

# Who gets what at each level of access, in the order of ROLES.
LEVELS: dict[str, tuple[int, int, int, int, int]] = {
    "anyone": (OK, OK, OK, OK, OK),
    "account": (401, OK, OK, OK, OK),
    "owner": (401, OK, 404, 404, OK),  # someone else's order or payment is as if it did not exist
    "owner-reads": (401, 403, 404, 404, OK),  # its owner may read it, only an admin changes it
    "moderator": (401, 403, 403, OK, OK),
    "admin": (401, 403, 403, 403, OK),
    "host": (403, 403, 403, 403, OK),  # a publisher's video token: the admin who hosts the stream
}

# The policy: the level of every operation of the OpenAPI document (and of one variant).
PUBLISHER = "/livestreams/agora/token?role=publisher"
ACCESS: dict[tuple[str, str], str] = {
    ("POST", "/auth/register"): "anyone",
    ("POST", "/auth/login"): "anyone",
    ("GET", "/auth/me"): "account",
    ("GET", "/livestreams/agora/token"): "anyone",
    ("GET", PUBLISHER): "host",
    ("POST", "/livestreams"): "admin",
    ("GET", "/livestreams"): "anyone",
    ("GET", "/livestreams/active"): "anyone",
    ("GET", "/livestreams/past"): "anyone",
    ("GET", "/livestreams/{stream_id}"): "anyone",
    ("PUT", "/livestreams/{stream_id}"): "admin",
    ("DELETE", "/livestreams/{stream_id}"): "admin",
    ("POST", "/livestreams/{stream_id}/start"): "admin",
    ("POST", "/livestreams/{stream_id}/stop"): "admin",
    ("POST", "/livestreams/{stream_id}/view"): "anyone",
    ("GET", "/livestreams/{stream_id}/chat"): "anyone",
    ("POST", "/livestreams/{stream_id}/like"): "anyone",
    ("POST", "/livestreams/{stream_id}/pin"): "admin",
    ("DELETE", "/livestreams/{stream_id}/pin/{product_id}"): "admin",
    ("GET", "/livestreams/{stream_id}/analytics"): "admin",
    ("POST", "/livestreams/{stream_id}/flash-sales"): "admin",
    ("GET", "/livestreams/{stream_id}/flash-sales"): "anyone",
    ("GET", "/livestreams/{stream_id}/flash-sales/{sale_id}"): "anyone",
    ("POST", "/livestreams/{stream_id}/flash-sales/{sale_id}/end"): "admin",
    ("POST", "/products"): "admin",
    ("GET", "/products"): "anyone",
    ("GET", "/products/{product_id}"): "anyone",
    ("PUT", "/products/{product_id}"): "admin",
    ("DELETE", "/products/{product_id}"): "admin",
    ("POST", "/orders"): "account",
    ("GET", "/orders"): "account",  # each account sees its own; an admin sees all
    ("GET", "/orders/{order_id}"): "owner",
    ("PATCH", "/orders/{order_id}"): "owner-reads",
    ("POST", "/orders/{order_id}/cancel"): "owner",
    ("POST", "/orders/{order_id}/payments"): "owner",
    ("GET", "/orders/{order_id}/payments"): "owner",
    ("GET", "/payments"): "account",
    ("GET", "/payments/{payment_id}"): "owner",
    ("POST", "/payments/{payment_id}/confirm"): "admin",
    ("POST", "/payments/{payment_id}/reject"): "admin",
    ("GET", "/analytics/daily"): "admin",
    ("GET", "/livestreams/{stream_id}/moderation"): "moderator",
    ("POST", "/livestreams/{stream_id}/moderation/delete-message"): "moderator",
    ("POST", "/livestreams/{stream_id}/moderation/mute"): "moderator",
    ("POST", "/livestreams/{stream_id}/moderation/unmute"): "moderator",
    ("PUT", "/livestreams/{stream_id}/moderation/blocked-words"): "moderator",
    ("PUT", "/livestreams/{stream_id}/moderation/slow-mode"): "moderator",
    ("PATCH", "/users/{user_id}/role"): "admin",
    ("GET", "/users"): "admin",
}


@dataclass
class Row:
    """One call of the matrix, made as each role in the order of ROLES."""

    method: str
    template: str  # as in the OpenAPI document
    path: str
    ok: int | dict[str, int]  # what an allowed call answers (per role where the state makes them differ)
    body: Callable[[str], Any] | None = None
    params: dict[str, str] | None = None
    policy: str | None = None  # the ACCESS key when it is not the template (a variant of an operation)

    def expected(self) -> tuple[int, ...]:
        level = LEVELS[ACCESS[(self.method, self.policy or self.template)]]
        return tuple(
            status if status != OK else (self.ok if isinstance(self.ok, int) else self.ok[role])
            for role, status in zip(ROLES, level, strict=True)
        )


def const(value: Any) -> Callable[[str], Any]:
    return lambda role: value


async def new_moderator(url: str, admin: Api) -> str:
    """A fresh account made a moderator by an admin; its token from a new login (a role change
    takes effect with the account's next token)."""
    address = email("mod")
    _, user = await register_customer(url, address)
    r = await admin.patch(f"/users/{user['id']}/role", json={"role": "moderator"})
    assert r.status_code == 200 and r.json()["role"] == "moderator", r.text
    return await login(url, address, "correct-horse-1")


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
    async with Api(gateway_url, await admin_token(gateway_url)) as admin:
        moderator_token = await new_moderator(gateway_url, admin)
    async with (
        Api(gateway_url, await admin_token(gateway_url)) as admin,
        Api(gateway_url, a.token) as ca,
        Api(gateway_url, b.token) as cb,
        Api(gateway_url, moderator_token) as mod,
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
                201,
                body=lambda role: {
                    "email": email(f"new-{ROLES.index(role)}"),
                    "password": "long-enough-1",
                },  # not "admin-…": staff names are reserved
            ),
            Row(
                "POST",
                "/auth/login",
                "/auth/login",
                200,
                body=const({"email": login_email, "password": "long-enough-1"}),
            ),
            Row("GET", "/auth/me", "/auth/me", 200),
            Row("GET", "/livestreams/agora/token", "/livestreams/agora/token", 200, params={"streamId": live}),
            Row(
                "GET",
                "/livestreams/agora/token",
                "/livestreams/agora/token",
                200,
                params={"streamId": live, "role": "publisher"},
                policy=PUBLISHER,
            ),
            Row("POST", "/livestreams", "/livestreams", 201, body=const({"title": "new"})),
            Row("GET", "/livestreams", "/livestreams", 200),
            Row("GET", "/livestreams/active", "/livestreams/active", 200),
            Row("GET", "/livestreams/past", "/livestreams/past", 200),
            Row("GET", "/livestreams/{stream_id}", f"/livestreams/{live}", 200),
            Row("PUT", "/livestreams/{stream_id}", f"/livestreams/{scheduled}", 200, body=const({"title": "renamed"})),
            Row("PUT", "/livestreams/{stream_id}", f"/livestreams/{live}", 409, body=const({"title": "renamed"})),
            Row("DELETE", "/livestreams/{stream_id}", f"/livestreams/{live}", 409),
            Row("DELETE", "/livestreams/{stream_id}", f"/livestreams/{doomed_stream}", 204),
            Row("POST", "/livestreams/{stream_id}/start", f"/livestreams/{live}/start", 200),
            Row("POST", "/livestreams/{stream_id}/stop", f"/livestreams/{live2}/stop", 200),
            Row("POST", "/livestreams/{stream_id}/view", f"/livestreams/{live}/view", 201),
            Row("GET", "/livestreams/{stream_id}/chat", f"/livestreams/{live}/chat", 200),
            Row("POST", "/livestreams/{stream_id}/like", f"/livestreams/{live}/like", 200),
            Row(
                "POST",
                "/livestreams/{stream_id}/pin",
                f"/livestreams/{live}/pin",
                200,
                body=const({"productId": p["id"], "displayOrder": 1}),
            ),
            Row(
                "DELETE",
                "/livestreams/{stream_id}/pin/{product_id}",
                f"/livestreams/{live}/pin/{p_pinned['id']}",
                204,
            ),
            Row("GET", "/livestreams/{stream_id}/analytics", f"/livestreams/{live}/analytics", 200),
            Row(
                "POST",
                "/livestreams/{stream_id}/flash-sales",
                f"/livestreams/{live}/flash-sales",
                409,  # this product has a running sale
                body=const(sale_body),
            ),
            Row("GET", "/livestreams/{stream_id}/flash-sales", f"/livestreams/{live}/flash-sales", 200),
            Row(
                "GET",
                "/livestreams/{stream_id}/flash-sales/{sale_id}",
                f"/livestreams/{live}/flash-sales/{sale}",
                200,
            ),
            Row(
                "POST",
                "/livestreams/{stream_id}/flash-sales/{sale_id}/end",
                f"/livestreams/{live}/flash-sales/{sale}/end",
                200,
            ),
            Row("POST", "/products", "/products", 201, body=const({"name": "x", "price": "1.00", "stock": 1})),
            Row("GET", "/products", "/products", 200),
            Row("GET", "/products/{product_id}", f"/products/{p['id']}", 200),
            Row("PUT", "/products/{product_id}", f"/products/{p['id']}", 200, body=const({"description": "better"})),
            Row("DELETE", "/products/{product_id}", f"/products/{p_doomed['id']}", 204),
            Row("POST", "/orders", "/orders", 201, body=const(item)),
            Row("GET", "/orders", "/orders", 200),
            Row("GET", "/orders/{order_id}", f"/orders/{order_a['id']}", 200),
            Row("PATCH", "/orders/{order_id}", f"/orders/{order_a['id']}", 200, body=const({"status": "confirmed"})),
            Row(
                "POST",
                "/orders/{order_id}/cancel",
                f"/orders/{order_a_cancel['id']}/cancel",
                {"a": 200, "admin": 409},  # the admin comes after A cancelled it
            ),
            Row(
                "POST",
                "/orders/{order_id}/payments",
                f"/orders/{order_a_pay['id']}/payments",
                {"a": 201, "admin": 409},  # the admin comes after A's payment
                body=const({"method": "cash_on_delivery", "amount": order_a_pay["total"]}),
            ),
            Row("GET", "/orders/{order_id}/payments", f"/orders/{order_a_pay['id']}/payments", 200),
            Row("GET", "/payments", "/payments", 200),
            Row("GET", "/payments/{payment_id}", f"/payments/{pay_a['id']}", 200),
            Row("POST", "/payments/{payment_id}/confirm", f"/payments/{pay_a['id']}/confirm", 200),
            Row("POST", "/payments/{payment_id}/reject", f"/payments/{pay_a_reject['id']}/reject", 200),
            Row("GET", "/analytics/daily", "/analytics/daily", 200),
            Row("GET", "/livestreams/{stream_id}/moderation", f"/livestreams/{live}/moderation", 200),
            Row(
                "POST",
                "/livestreams/{stream_id}/moderation/delete-message",
                f"/livestreams/{live}/moderation/delete-message",
                404,  # no such message: past the rule, the stream answered
                body=const({"messageId": 10**9}),
            ),
            Row(
                "POST",
                "/livestreams/{stream_id}/moderation/mute",
                f"/livestreams/{live}/moderation/mute",
                200,
                body=const({"sessionId": "someone", "durationSeconds": 5}),
            ),
            Row(
                "POST",
                "/livestreams/{stream_id}/moderation/unmute",
                f"/livestreams/{live}/moderation/unmute",
                200,
                body=const({"sessionId": "someone"}),
            ),
            Row(
                "PUT",
                "/livestreams/{stream_id}/moderation/blocked-words",
                f"/livestreams/{live}/moderation/blocked-words",
                200,
                body=const({"words": []}),
            ),
            Row(
                "PUT",
                "/livestreams/{stream_id}/moderation/slow-mode",
                f"/livestreams/{live}/moderation/slow-mode",
                200,
                body=const({"seconds": 0}),
            ),
            Row("PATCH", "/users/{user_id}/role", f"/users/{b.id}/role", 200, body=const({"role": "customer"})),
            Row("GET", "/users", "/users", 200),
        ]

        # Every operation of the OpenAPI document is in the matrix, and every policy line is used.
        spec = (await anon.get("/openapi.json")).json()
        documented = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}
        assert documented - UNLISTED == {(r.method, r.template) for r in rows}
        assert set(ACCESS) == {(r.method, r.policy or r.template) for r in rows}

        clients = {"anon": anon, "a": ca, "b": cb, "moderator": mod, "admin": admin}
        failures = []
        for row in rows:
            for role, expected in zip(ROLES, row.expected(), strict=True):
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
        # A moderator is a customer in commerce: its own orders (the matrix's), nobody else's.
        me = (await mod.get("/auth/me")).json()["user"]
        assert me["role"] == "moderator"
        assert {o["userId"] for o in (await mod.get("/orders", params={"userId": a.id})).json()} == {me["id"]}
        assert (await mod.get("/payments")).json() == []
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
