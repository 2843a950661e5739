"""The REST request types accept exactly what their JSON Schema (as the OpenAPI
document shows it) allows: checked against the validator Schemathesis uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import jsonschema_rs
import pytest
from hypothesis import given, settings, strategies as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.rest.flash_sales import FlashSaleIn
from gateway.rest.moderation import MuteBody, UnmuteBody
from gateway.rest.orders import OrderItemIn
from gateway.rest.products import ImageUrl, ProductUpdate
from gateway.rest.types import DateTimeIn, DayIn, EmailIn
from gateway.services.inputs import NOT_BLANK_SCHEMA, WHITESPACE, Integral, NotBlank


class Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: Annotated[int, Field(strict=True, ge=-5, le=1000), Integral] | None = None
    title: Annotated[str, Field(min_length=1, max_length=10, json_schema_extra=NOT_BLANK_SCHEMA), NotBlank] | None = (
        None
    )
    at: DateTimeIn | None = None
    day: DayIn | None = None
    email: EmailIn | None = None
    image: ImageUrl | None = None


def agree(model: type[BaseModel], body: dict[str, Any]) -> tuple[bool, bool]:
    """(valid for the JSON Schema, accepted by the model)."""
    valid = jsonschema_rs.validator_for(model.model_json_schema(), validate_formats=True).is_valid(body)
    try:
        model.model_validate(body)
        accepted = True
    except ValidationError:
        accepted = False
    return valid, accepted


SAMPLES: dict[str, list[Any]] = {
    "count": [0, 2, 2.0, -5, 1000, 1000.0, 1e3, 2.5, -6, 1001, True, False, "2", "2.0", None, [], {}, 1e300],
    "title": ["a", " a ", "  ", "", "\u3000", "\x1c", "\xa0x", "x" * 10, " " + "x" * 10, 5, None],
    "at": [
        "2030-01-31T18:00:00Z",
        "2030-01-31t18:00:00.123456789z",
        "2030-01-31T18:00:00+05:30",
        "2030-01-31T18:00:00",
        "2030-01-31",
        "2030-01-31 18:00:00Z",
        "1999-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
        "2016-12-31T23:59:60Z",
        "2030-01-31T12:00:60Z",
        "2030-02-30T00:00:00Z",
        "2030-01-31T24:00:00Z",
        "2030-01-31T18:00:00+24:00",
        "2999-12-31T23:59:59-23:59",
        0,
        1700000000,
        "1700000000",
    ],
    "day": ["2030-01-31", "2024-02-29", "2023-02-29", "0000-01-01", "2030-1-31", "2030-01-31T00:00:00Z", 20300131],
    "email": [
        "ada@example.com",
        "a.b+c@x.test",
        "A@B.COM",
        "a@b",
        "a..b@x.com",
        ".a@x.com",
        "ü@x.com",
        "a@ü.com",
        " a@x.com",
        "a@x.com ",
        '"a b"@x.com',
        "a@[127.0.0.1]",
        "x" * 64 + "@x.com",
        "x" * 65 + "@x.com",
        "a@" + "b" * 63 + ".com",
        "a@" + "b" * 64 + ".com",
        "a@-b.com",
        "a@b.123",
    ],
    "image": [
        "https://cdn.example.com/p.jpg",
        " https://x/y ",
        "http://a",
        "https://",
        "https://a b",
        "javascript:x",
        "ftp://x/y",
        "https://x/\u3000",
        "https://x/\x1c",
    ],
}


@pytest.mark.parametrize("field, value", [(f, v) for f, values in SAMPLES.items() for v in values])
def test_each_field_accepts_what_its_schema_allows(field: str, value: Any) -> None:
    valid, accepted = agree(Fields, {field: value})
    assert valid == accepted, f"{field}={value!r}: schema says {valid}, model says {accepted}"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), st.one_of(st.integers(-10, 1010), st.floats(allow_nan=False), st.booleans()))
def test_text_and_integers_agree_on_anything(text: str, number: Any) -> None:
    for body in ({"title": text}, {"count": number}, {"image": "https://" + text}, {"email": text + "@x.com"}):
        valid, accepted = agree(Fields, body)
        assert valid == accepted, body


def test_values_come_out_clean() -> None:
    f = Fields.model_validate(
        {
            "count": 7.0,
            "title": "\u3000 Sale \n",
            "at": "2030-01-31T18:00:00+01:00",
            "email": "Ada@Example.COM",
            "image": " https://x/y ",
        }
    )
    assert (f.count, f.title, f.email, f.image) == (7, "Sale", "ada@example.com", "https://x/y")
    assert isinstance(f.count, int)
    assert f.at == datetime(2030, 1, 31, 17, tzinfo=UTC)
    leap = Fields.model_validate({"at": "2016-12-31T23:59:60Z"}).at
    assert leap is not None and leap.second == 59 and leap.microsecond == 999_999
    assert set(WHITESPACE) >= {" ", "\t", "\n", "\u3000", "\xa0"}


@pytest.mark.parametrize(
    "model, body",
    [
        (MuteBody, {}),
        (MuteBody, {"userId": None}),
        (MuteBody, {"userId": "u1"}),
        (MuteBody, {"messageId": 3.0}),
        (MuteBody, {"sessionId": "s", "userId": None}),
        (MuteBody, {"durationSeconds": 60}),
        (UnmuteBody, {}),
        (UnmuteBody, {"sessionId": "s"}),
        (UnmuteBody, {"userId": None, "sessionId": None}),
        (ProductUpdate, {}),
        (ProductUpdate, {"stock": 1}),
        (ProductUpdate, {"stock": 1, "stockDelta": 1}),
        (ProductUpdate, {"stock": None, "stockDelta": -1}),
        (ProductUpdate, {"stock": 2.0, "stockDelta": 1.0}),
        (FlashSaleIn, {"productId": "a" * 24, "price": "1", "quantity": 1}),
        (FlashSaleIn, {"productId": "a" * 24, "price": "1", "quantity": 1, "durationSeconds": 60}),
        (FlashSaleIn, {"productId": "a" * 24, "price": 1.0, "quantity": 1.0, "durationSeconds": 60.0}),
        (FlashSaleIn, {"productId": "a" * 24, "price": "1", "quantity": 1, "endsAt": "2030-01-01T00:00:00Z"}),
        (
            FlashSaleIn,
            {
                "productId": "a" * 24,
                "price": "1",
                "quantity": 1,
                "endsAt": "2030-01-01T00:00:00Z",
                "durationSeconds": 60,
            },
        ),
        (FlashSaleIn, {"productId": "a" * 24, "price": "1", "quantity": 1, "endsAt": None, "durationSeconds": 60}),
        (FlashSaleIn, {"productId": "a" * 24, "price": "1.001", "quantity": 1, "durationSeconds": 60}),
        (OrderItemIn, {"productId": "a" * 24, "quantity": 2.0}),
        (OrderItemIn, {"productId": "a" * 24, "quantity": 2.5}),
    ],
)
def test_request_level_rules_are_in_the_schema(model: type[BaseModel], body: dict[str, Any]) -> None:
    valid, accepted = agree(model, body)
    assert valid == accepted, f"{model.__name__} {body}: schema says {valid}, model says {accepted}"
