"""The money codec, pure: an amount goes in as a JSON number (or a decimal
string) and out as a JSON number whose text is exact, for any amount a shop
can hold in any currency, through every JSON writer and reader the project
and the old apps use (issue 15)."""

from __future__ import annotations

import json
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from core.money import (
    MoneyError,
    exponent,
    format_minor,
    max_minor,
    money_number,
    parse_amount,
    to_minor,
)
from core.wire import pinned_product

CURRENCIES = ["USD", "JPY", "KWD"]  # 2, 0 and 3 decimals


@st.composite
def amounts(draw: st.DrawFn) -> tuple[str, int]:
    currency = draw(st.sampled_from(CURRENCIES))
    return currency, draw(st.integers(0, max_minor(currency)))


@settings(max_examples=3000, deadline=None)
@given(amounts())
def test_an_amount_in_is_the_amount_out_whatever_the_json_writer(amount: tuple[str, int]) -> None:
    currency, minor = amount
    exact = Decimal(format_minor(minor, currency))
    number = money_number(minor, currency)
    for text in (json.dumps(number), orjson.dumps(number).decode()):
        # The text written is the amount itself: never a float's expansion.
        assert Decimal(text) == exact
        assert len(text) <= len(format_minor(minor, currency)) + 2  # at most a ".0" more
        # Read back as the REST routes read a body (numbers as Decimal): the same minor units.
        assert to_minor(parse_amount(json.loads(text, parse_float=Decimal)), currency) == minor
        # Read back as an app reads it (a double), then `toFixed`: the same amount.
        assert f"{json.loads(text):.{exponent(currency)}f}" == format_minor(minor, currency)


@settings(max_examples=1000, deadline=None)
@given(amounts(), st.integers(1, 9))
def test_a_digit_beyond_the_currency_decimals_is_refused(amount: tuple[str, int], digit: int) -> None:
    currency, minor = amount
    text = format_minor(minor, currency) + ("." if exponent(currency) == 0 else "") + str(digit)
    with pytest.raises(MoneyError, match="decimals"):
        to_minor(parse_amount(json.loads(text, parse_float=Decimal)), currency)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(CURRENCIES), st.integers(0, 10**12))
def test_a_pinned_price_is_shown_as_the_catalogue_priced_it(currency: str, minor: int) -> None:
    shown = pinned_product({"productId": "p", "price": format_minor(minor, currency)})
    assert (shown["_id"], shown["priceMinor"]) == ("p", minor)
    assert Decimal(orjson.dumps(shown["price"]).decode()) == Decimal(format_minor(minor, currency))
    assert pinned_product(orjson.loads(orjson.dumps(shown))) == shown  # a gateway shaping it again


def test_a_number_no_float_writes_exactly_is_never_shown() -> None:
    with pytest.raises(MoneyError, match="digits"):
        money_number(10**16 + 1, "USD")
    assert money_number(max_minor("KWD"), "KWD") == 9999999999.999
