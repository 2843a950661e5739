"""`GET /users` on a live gateway: admins list accounts, paged and searched by email,
with `_id` as every list answers, and never a password hash."""

from __future__ import annotations

import uuid

import pytest

from tests.support.clients import Api, login, register_customer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.system


async def test_admins_list_users_paged_and_searched_by_email(gateway_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    emails = [f"Lister-{tag}-{i}@Example.com" for i in range(3)]
    customers = [await register_customer(gateway_url, e, name=f"Lister {i}") for i, e in enumerate(emails)]
    customer_token = customers[0][0]
    admin_token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(gateway_url, admin_token) as admin:
        r = await admin.get("/users", params={"email": f"LISTER-{tag}", "limit": 2})
        assert r.status_code == 200, r.text
        assert r.headers["X-Total-Count"] == "3"
        first = r.json()
        assert len(first) == 2
        r = await admin.get("/users", params={"email": f"lister-{tag}", "limit": 2, "page": 2})
        second = r.json()
        assert len(second) == 1
        found = first + second
        assert sorted(u["email"] for u in found) == sorted(e.lower() for e in emails)
        assert {u["_id"] for u in found} == {c[1]["id"] for c in customers}
        for u in found:
            assert u["_id"] == u["id"] and u["role"] == "customer" and u["name"].startswith("Lister ")
            assert set(u) == {"id", "_id", "email", "name", "role", "createdAt"}
        assert "hash" not in r.text.lower() and "argon" not in r.text.lower()

        # The search is plain text: a regex matches nothing, an exact email finds its account.
        for needle in (".*", f"lister-{tag}-.@", "^lister", "(", "[a-z]"):
            r = await admin.get("/users", params={"email": needle})
            assert r.status_code == 200 and r.json() == [] and r.headers["X-Total-Count"] == "0", needle
        r = await admin.get("/users", params={"email": emails[1]})
        assert [u["id"] for u in r.json()] == [customers[1][1]["id"]]

        # Everyone, the admin included; bounds as on every list.
        r = await admin.get("/users", params={"limit": 100})
        assert r.status_code == 200 and ADMIN_EMAIL.lower() in {u["email"] for u in r.json()}
        for bad in ({"limit": 101}, {"limit": 0}, {"page": 0}, {"email": ""}):
            assert (await admin.get("/users", params=bad)).status_code == 422, bad

    async with Api(gateway_url, customer_token) as customer:
        r = await customer.get("/users")
        assert r.status_code == 403 and "lister" not in r.text.lower()
    async with Api(gateway_url) as anonymous:
        assert (await anonymous.get("/users")).status_code == 401


async def test_a_new_account_cannot_take_a_staff_name(gateway_url: str) -> None:
    """The name an account registers with is what its chat carries: the guests' rule holds."""
    async with Api(gateway_url) as anonymous:
        for name in ("Admin", "S u p p o r t", "m0derator"):
            r = await anonymous.post(
                "/auth/register",
                json={"email": f"n-{uuid.uuid4().hex[:8]}@example.com", "password": "correct-horse-1", "name": name},
            )
            assert r.status_code == 409, r.text
            assert r.json()["error"] == "name_reserved" and "kept for the shop's staff" in r.json()["message"]
