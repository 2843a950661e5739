"""Helpers shared by the REST system tests: accounts, products, streams."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tests.support.clients import Api, login, register_customer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD


def email(tag: str = "c") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


@dataclass
class Customer:
    token: str
    user: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.user["id"])


async def new_customer(url: str, tag: str = "c") -> Customer:
    token, user = await register_customer(url, email(tag))
    return Customer(token, user)


_admin_token: dict[str, str] = {}


async def admin_token(url: str) -> str:
    """One admin login per gateway for the whole session (logins are rate limited)."""
    if url not in _admin_token:
        _admin_token[url] = await login(url, ADMIN_EMAIL, ADMIN_PASSWORD)
    return _admin_token[url]


async def new_product(
    admin: Api, price: str | int | float = "19.99", stock: int = 10, name: str | None = None, **extra: Any
) -> dict[str, Any]:
    body = {
        "name": name or f"Product {uuid.uuid4().hex[:6]}",
        "price": price,
        "stock": stock,
        "images": ["https://cdn.example.com/p.jpg"],
        **extra,
    }
    r = await admin.post("/products", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def new_stream(admin: Api, title: str = "REST", live: bool = False) -> str:
    r = await admin.post("/livestreams", json={"title": title})
    assert r.status_code == 201, r.text
    sid = str(r.json()["id"])
    if live:
        r = await admin.post(f"/livestreams/{sid}/start")
        assert r.status_code == 200, r.text
    return sid


async def stop_all_live(admin: Api) -> None:
    r = await admin.get("/livestreams/active", params={"limit": 100})
    for s in r.json():
        await admin.post(f"/livestreams/{s['id']}/stop")


def assert_error(r: Any, status: int) -> dict[str, Any]:
    """The one error shape, with this status."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) >= {"error", "message", "status"} and body["status"] == status and body["message"], body
    return dict(body)
