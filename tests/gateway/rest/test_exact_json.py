"""REST bodies read JSON numbers by their text (issue 15): a price is the decimal
written, never what a float makes of it; whole numbers written with a fraction
stay integers; and money answers are JSON numbers whose text is exact."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from core.money import MoneyIn, money_number
from gateway.errors import install as install_error_handlers
from gateway.rest.documents import DocumentOut, MoneyOut
from gateway.rest.exact_json import ExactJsonRoute
from gateway.services.inputs import Integral


class Body(BaseModel):
    price: MoneyIn
    quantity: Annotated[int, Field(strict=True, ge=1, le=1000), Integral] = 1


class Answer(DocumentOut):
    price: MoneyOut
    priceMinor: int
    quantity: int


def client() -> TestClient:
    router = APIRouter(route_class=ExactJsonRoute)

    @router.post("/echo", response_model=Answer)
    async def echo(body: Body) -> Answer:
        minor = int(body.price * 100)
        return Answer(id="abc", price=money_number(minor, "USD"), priceMinor=minor, quantity=body.quantity)

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    return TestClient(app)


def post(text: str) -> Any:
    return client().post("/echo", content=text, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ('{"price": 49.99}', '{"id":"abc","price":49.99,"priceMinor":4999,"quantity":1,"_id":"abc"}'),
        (
            '{"price": 4.999e1, "quantity": 2.0}',
            '{"id":"abc","price":49.99,"priceMinor":4999,"quantity":2,"_id":"abc"}',
        ),
        ('{"price": 0.1, "quantity": 3}', '{"id":"abc","price":0.1,"priceMinor":10,"quantity":3,"_id":"abc"}'),
        ('{"price": "19.90"}', '{"id":"abc","price":19.9,"priceMinor":1990,"quantity":1,"_id":"abc"}'),
        (
            '{"price": 9999999999.99}',
            '{"id":"abc","price":9999999999.99,"priceMinor":999999999999,"quantity":1,"_id":"abc"}',
        ),
    ],
)
def test_numbers_in_are_their_text_and_money_out_is_exact_text(text: str, answer: str) -> None:
    r = post(text)
    assert (r.status_code, r.text) == (200, answer)


@pytest.mark.parametrize(
    "text",
    [
        '{"price": 49.990000000000000001}',  # a float would read 49.99
        '{"price": 49.999}',
        '{"price": 0.30000000000000004}',
        '{"price": 1e-2, "quantity": 2.5}',
        '{"price": -0.01}',
        '{"price": 1e10}',
        '{"price": 5, "quantity": 1e999999999}',
    ],
)
def test_what_a_float_would_round_away_is_refused_naming_the_field(text: str) -> None:
    r = post(text)
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith("Invalid request: body.")


def test_an_amount_read_is_a_decimal_never_a_float() -> None:
    seen: list[object] = []
    router = APIRouter(route_class=ExactJsonRoute)

    @router.post("/seen")
    async def look(body: dict[str, Any]) -> None:
        seen.append(body["price"])

    app = FastAPI()
    app.include_router(router)
    assert TestClient(app).post("/seen", content='{"price": 49.99}', headers={"Content-Type": "application/json"})
    assert seen == [Decimal("49.99")] and isinstance(seen[0], Decimal)
