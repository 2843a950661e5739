"""The old apps, unchanged, against a real gateway (issue 15).

The requests are written as the old admin and customer apps write them
(JavaScript's `JSON.stringify`: prices as numbers, ISO dates with
milliseconds, the `_id` read from an answer sent back in the next request),
and the answers are read the way those apps read them: `stream._id` to
navigate, `price.toFixed(2)` on a JSON number, the pinned products of
`pinned_products_updated`. The raw text of every answer is read too: a price
is written `49.99`, never a float's expansion.

Then a property: any price with at most the currency's decimals goes exactly
through create, read, order, payment and analytics.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings, strategies as st

from core.money import format_minor, max_minor
from tests.support.clients import Api
from tests.system.rest_support import admin_token, assert_error, new_customer

pytestmark = pytest.mark.system

JSON = {"Content-Type": "application/json"}
NOW = "2026-11-30T20:00:00.000Z"  # the old apps stamp chat with `new Date().toISOString()`
EXACT_EXAMPLES = 25  # each is six requests to a real gateway: under two seconds in all


def js(body: dict[str, Any]) -> str:
    """A body as `JSON.stringify` writes it (numbers as their shortest text)."""
    return json.dumps(body, separators=(",", ":"))


def exact(r: httpx.Response) -> Any:
    """The answer with every JSON number as the Decimal of its text."""
    return json.loads(r.text, parse_float=Decimal)


def to_fixed(value: Any, decimals: int = 2) -> str:
    """JavaScript's `value.toFixed(decimals)`: a TypeError on anything but a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r}.toFixed is not a function")
    return f"{value:.{decimals}f}"


def same_id(doc: dict[str, Any], key: str = "id") -> str:
    """`_id`, the old apps' handle, is there and is the same as `id`."""
    assert isinstance(doc.get("_id"), str | int) and doc["_id"] == doc[key], doc
    return str(doc["_id"])


class RawSocket:
    """A WebSocket as an app holds it: the text of each frame, kept as received."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.texts: list[str] = []

    async def __aenter__(self) -> RawSocket:
        self.ws = await websockets.connect(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(js(frame))

    async def wait_for(self, type_: str, predicate: Any = lambda f: True, timeout: float = 10.0) -> tuple[Any, str]:
        async with asyncio.timeout(timeout):
            while True:
                text = str(await self.ws.recv())
                self.texts.append(text)
                frame = json.loads(text)
                if frame.get("type") == type_ and predicate(frame):
                    return frame, text


async def test_the_old_admin_and_customer_apps_work_unchanged(gateway_url: str, ws_url: str) -> None:
    customer = await new_customer(gateway_url, "oldapp")
    async with Api(gateway_url, await admin_token(gateway_url)) as admin, Api(gateway_url, customer.token) as buyer:
        same_id(customer.user)  # the login/register answer's user

        # The admin app creates a stream, navigates with `_id`, edits and starts it.
        r = await admin.post("/livestreams", content=js({"title": "Old app", "description": "d"}), headers=JSON)
        assert r.status_code == 201, r.text
        sid = same_id(r.json())
        r = await admin.put(
            f"/livestreams/{sid}", content=js({"scheduledAt": "2030-01-31T18:00:00.000Z"}), headers=JSON
        )
        assert r.status_code == 200 and same_id(r.json()) == sid, r.text
        r = await admin.post(f"/livestreams/{sid}/start")
        assert r.status_code == 200 and same_id(r.json()) == sid
        assert sid in [same_id(s) for s in (await admin.get("/livestreams/active", params={"limit": 100})).json()]

        # A product with a JSON-number price and one `image`; then a new price and image.
        body = {"name": "Lamp", "price": 49.99, "stock": 5, "image": "https://cdn.example.com/lamp.jpg"}
        r = await admin.post("/products", content=js(body), headers=JSON)
        assert r.status_code == 201, r.text
        assert '"price":49.99,' in r.text and '"priceMinor":4999' in r.text  # the text, exactly
        product = r.json()
        pid = same_id(product)
        assert (to_fixed(product["price"]), product["currency"]) == ("49.99", "USD")
        assert (product["image"], product["images"]) == ("https://cdn.example.com/lamp.jpg", [])
        r = await admin.put(
            f"/products/{pid}",
            content=js(
                {"price": 0.1, "image": "https://cdn.example.com/lamp2.jpg", "images": ["https://x.example/a.png"]}
            ),
            headers=JSON,
        )
        assert r.status_code == 200 and '"price":0.1,' in r.text, r.text
        assert (r.json()["image"], r.json()["images"]) == (
            "https://cdn.example.com/lamp2.jpg",
            ["https://x.example/a.png"],
        )
        r = await admin.put(f"/products/{pid}", content=js({"price": 49.99}), headers=JSON)
        assert exact(r)["price"] == Decimal("49.99") and r.json()["image"] == "https://cdn.example.com/lamp2.jpg"
        same_id((await buyer.get(f"/products/{pid}")).json())
        assert pid in [same_id(p) for p in (await buyer.get("/products", params={"limit": 100})).json()]

        # More decimals than the currency has: 422, naming the field, whether a number or a string.
        for path, method, bad in (
            ("/products", admin.post, {"name": "x", "price": 49.999}),
            ("/products", admin.post, {"name": "x", "price": "49.999"}),
            (f"/products/{pid}", admin.put, {"price": 1.001}),
        ):
            assert "price" in assert_error(await method(path, content=js(bad), headers=JSON), 422)["message"]

        # A viewer's app joins, the admin pins: the pinned product carries `_id`, `image` and a number price.
        async with RawSocket(ws_url) as app:
            session = f"old-{uuid.uuid4().hex[:8]}"
            await app.send({"type": "register", "sessionId": session, "token": customer.token, "streamId": sid})
            started, _ = await app.wait_for("stream_started")
            assert same_id(started["streamData"], "streamId") == sid
            assert (
                await admin.post(f"/livestreams/{sid}/pin", content=js({"productId": pid}), headers=JSON)
            ).is_success
            pinned, text = await app.wait_for("pinned_products_updated", lambda f: len(f["pinnedProducts"]) == 1)
            [shown] = pinned["pinnedProducts"]
            assert '"price":49.99,' in text and "49.990000" not in text
            assert same_id(shown, "productId") == pid
            assert (to_fixed(shown["price"]), shown["priceMinor"], shown["currency"], shown["image"]) == (
                "49.99",
                4999,
                "USD",
                "https://cdn.example.com/lamp2.jpg",
            )
            await app.send({"type": "chat_message", "message": "how much?", "username": "old", "timestamp": NOW})
            said, _ = await app.wait_for("chat_message", lambda f: f["message"] == "how much?")
            same_id(said)  # a chat message is a document too: `_id`, the same as `id`
        # An app joining later gets the chat history, each message with its `_id`.
        async with RawSocket(ws_url) as late:
            await late.send({"type": "register", "sessionId": f"late-{session}", "streamId": sid})
            history, _ = await late.wait_for("chat_history")
            assert [same_id(m) for m in history["messages"] if m["message"] == "how much?"] == [str(said["id"])]
        r = await buyer.get(f"/livestreams/{sid}")
        [rest_pin] = r.json()["pinnedProducts"]
        assert rest_pin == shown and '"price":49.99,' in r.text

        # The customer app orders (sending the price and total it shows, which the server ignores) and pays.
        order_body = {"items": [{"productId": pid, "quantity": 3, "price": 49.99}], "total": 149.97, "streamId": sid}
        r = await buyer.post("/orders", content=js(order_body), headers=JSON)
        assert r.status_code == 201, r.text
        order = r.json()
        oid = same_id(order)
        assert '"total":149.97,' in r.text and '"unitPrice":49.99,' in r.text and '"lineTotal":149.97,' in r.text
        assert (to_fixed(order["total"]), order["totalMinor"], order["items"][0]["image"]) == (
            "149.97",
            14997,
            "https://cdn.example.com/lamp2.jpg",
        )
        assert oid in [same_id(o) for o in (await buyer.get("/orders")).json()]
        pay_url = f"/orders/{oid}/payments"
        bad = {"method": "cash_on_delivery", "amount": 149.975}
        assert "amount" in assert_error(await buyer.post(pay_url, content=js(bad), headers=JSON), 422)["message"]
        r = await buyer.post(
            pay_url, content=js({"method": "cash_on_delivery", "amount": order["total"]}), headers=JSON
        )
        assert r.status_code == 201, r.text
        assert '"amount":149.97,' in r.text and r.json()["amountMinor"] == 14997
        payment_id = same_id(r.json())
        assert same_id((await buyer.get(f"/payments/{payment_id}")).json()) == payment_id

        # Chat history entries carry `_id` too; after the stream, the stored record answers with it.
        [said] = (await buyer.get(f"/livestreams/{sid}/chat")).json()
        assert same_id(said) == str(said["seq"]) and said["message"] == "how much?"
        r = await admin.post(f"/livestreams/{sid}/stop")
        assert r.status_code == 200 and same_id(r.json()) == sid
        assert same_id((await buyer.get(f"/livestreams/{sid}")).json()) == sid


@st.composite
def prices(draw: st.DrawFn) -> Decimal:
    """Any USD price a shop can hold (at most 2 decimals), small ones more often."""
    top = draw(st.sampled_from([100, 10**6, max_minor("USD")]))
    return Decimal(format_minor(draw(st.integers(0, top)), "USD"))


def test_any_price_goes_exactly_through_create_read_order_payment_and_analytics(gateway_url: str) -> None:
    admin_auth = {"Authorization": f"Bearer {asyncio.run(admin_token(gateway_url))}", **JSON}
    customer = asyncio.run(new_customer(gateway_url, "exact"))
    buyer_auth = {"Authorization": f"Bearer {customer.token}", **JSON}
    with httpx.Client(base_url=gateway_url, timeout=30) as http:
        sid = http.post("/livestreams", content=js({"title": "Exact"}), headers=admin_auth).json()["_id"]
        revenue = [0]

        @settings(
            max_examples=EXACT_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(price=prices())
        def goes_through(price: Decimal) -> None:
            minor = int(price * 100)
            text = f"{price.normalize():f}"  # as JavaScript writes the number (49.99, 5, 0.1)
            r = http.post("/products", content=f'{{"name":"Exact","stock":1,"price":{text}}}', headers=admin_auth)
            assert r.status_code == 201, r.text
            created = exact(r)
            assert (created["price"], created["priceMinor"]) == (price, minor)
            read = http.get(f"/products/{created['_id']}")
            assert (exact(read)["price"], to_fixed(read.json()["price"])) == (price, format_minor(minor, "USD"))
            order_body = {"items": [{"productId": created["_id"], "quantity": 1}], "streamId": sid}
            r = http.post("/orders", content=js(order_body), headers=buyer_auth)
            assert r.status_code == 201, r.text
            order = exact(r)
            assert (order["total"], order["totalMinor"], order["items"][0]["unitPrice"]) == (price, minor, price)
            # The app pays what it read, written back as JavaScript writes that number.
            amount = json.dumps(r.json()["total"])
            r = http.post(
                f"/orders/{order['_id']}/payments",
                content=f'{{"method":"cash_on_delivery","amount":{amount}}}',
                headers=buyer_auth,
            )
            assert r.status_code == 201, r.text
            assert (exact(r)["amount"], exact(r)["amountMinor"]) == (price, minor)
            revenue[0] += minor
            totals = http.get(f"/livestreams/{sid}/analytics", headers=admin_auth).json()
            assert (totals["revenueMinor"], totals["revenue"]) == (revenue[0], format_minor(revenue[0], "USD"))

        goes_through()
