"""Money as the API shows it and the database stores it. Pure: no I/O.

* Stored: integer minor units (`priceMinor`, `totalMinor`, ...) plus an ISO
  4217 `currency` code. Sums are integer sums, so they are exact.
* Shown: an exact decimal string with the currency's number of decimals
  (`"19.99"`, `"1200"` for JPY).
* Accepted (`MoneyIn`): a decimal string (`"19.99"`, `"5"`: digits, at most
  one point, no sign, no spaces, at most as many decimals as the shop's
  currency has) or a JSON integer meaning whole units (`5` is 5.00; `5.0` is
  the same JSON Schema integer and means the same). A JSON number with a
  fraction (`19.99`) is refused, because a binary float cannot hold most prices
  exactly. Every amount is below ten billion units.

The OpenAPI document states exactly this (`money_schema`): a `pattern` for the
string (with the shop currency's decimals) or an `integer` with its bounds.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# Currencies whose minor unit is not a hundredth (ISO 4217); everything else has 2 decimals.
EXPONENTS = {
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "UGX": 0,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}
MAX_UNITS = 10**10  # no single amount at or above ten billion units
MAX_DECIMALS = max(EXPONENTS.values())
DEFAULT_CURRENCY = "USD"  # as `SHOP_CURRENCY` defaults


class MoneyError(ValueError):
    """An amount that cannot be money: the message says what to send."""


def exponent(currency: str) -> int:
    return EXPONENTS.get(currency.upper(), 2)


def decimal_pattern(decimals: int) -> str:
    """The pattern of an amount string with at most `decimals` decimals, below `MAX_UNITS`."""
    whole = f"^(0|[1-9][0-9]{{0,{len(str(MAX_UNITS)) - 2}}})"
    return whole + (f"(\\.[0-9]{{1,{decimals}}})?$" if decimals else "$")


_ANY_DECIMALS = re.compile(decimal_pattern(MAX_DECIMALS))


def parse_amount(value: Any) -> Decimal:
    """A non-negative exact decimal from a string (at most `MAX_DECIMALS`
    decimals) or a whole number (an int, or a float equal to one). Fractions in
    floats, booleans, exponents in strings, signs, spaces and more than
    `MAX_DECIMALS` decimals are refused, as is anything from `MAX_UNITS` up."""
    if isinstance(value, bool):
        raise MoneyError('send money as a decimal string such as "19.99" (or a whole number)')
    if isinstance(value, float):
        if not value.is_integer():
            raise MoneyError('send money as a decimal string such as "19.99" (or a whole number), never a float')
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value < MAX_UNITS:
            raise MoneyError("amount out of range: 0 to 9999999999")
        return Decimal(value)
    if isinstance(value, str) and _ANY_DECIMALS.fullmatch(value):
        return Decimal(value)
    raise MoneyError('send money as a decimal string such as "19.99" (digits, at most one point, no sign)')


def to_minor(amount: Decimal, currency: str) -> int:
    """Decimal units -> integer minor units. Refuses more decimals than the currency has."""
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{currency} amounts have at most {exponent(currency)} decimals")
    return int(scaled)


def format_minor(minor: int, currency: str) -> str:
    """Integer minor units -> the exact decimal string (`1999`, USD -> `"19.99"`)."""
    exp = exponent(currency)
    if exp == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(int(minor)), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}"


# ------------------------------------------------------------------ the shop currency of requests

_request_currency = DEFAULT_CURRENCY


def use_currency(currency: str) -> None:
    """Set the currency request amounts are in (the shop's, `SHOP_CURRENCY`):
    it decides how many decimals `MoneyIn` accepts and the OpenAPI document
    shows. One shop currency per process; set it before serving."""
    global _request_currency
    exponent(currency)  # any code is accepted; unknown ones have 2 decimals
    _request_currency = currency.upper()


def request_currency() -> str:
    return _request_currency


def money_schema(currency: str) -> dict[str, Any]:
    """The JSON Schema of a request amount in `currency`: exactly what `MoneyIn` accepts."""
    decimals = exponent(currency)
    return {
        "anyOf": [
            {
                "type": "string",
                "pattern": decimal_pattern(decimals),
                "description": f"exact decimal, at most {decimals} decimals ({currency})",
            },
            {"type": "integer", "minimum": 0, "maximum": MAX_UNITS - 1, "description": "whole units"},
        ],
        "description": f"an amount in {currency}: an exact decimal string, or whole units; "
        "numbers with a fraction are refused",
        "examples": ["19.99" if decimals else "1999"],
    }


def _validate(value: Any) -> Decimal:
    try:
        amount = parse_amount(value)
        to_minor(amount, _request_currency)
    except MoneyError as e:
        raise ValueError(str(e)) from e
    return amount


class _MoneyField:
    """`MoneyIn`'s validation and schema, both read from the request currency
    when used (the schema when the OpenAPI document is built)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(_validate)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return money_schema(_request_currency)


MoneyIn = Annotated[Decimal, _MoneyField()]
"""A request field holding an amount in the shop currency: validated to an exact `Decimal`, never a float."""


def _validate_currency(value: Any) -> str:
    if value != _request_currency:
        raise ValueError(f"this shop sells in {_request_currency}")
    return _request_currency


class _CurrencyField:
    """`CurrencyIn`: the shop currency's code and nothing else, in validation and in the schema."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(_validate_currency)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "enum": [_request_currency], "description": "the shop currency"}


CurrencyIn = Annotated[str, _CurrencyField()]
"""A request field naming a currency: the shop's (`SHOP_CURRENCY`), the only one amounts can be in."""
