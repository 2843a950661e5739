"""Money as the API shows it and the database stores it. Pure: no I/O.

* Stored: integer minor units (`priceMinor`, `totalMinor`, ...) plus an ISO
  4217 `currency` code. Sums are integer sums, so they are exact.
* Shown (`money_number`): a JSON number whose text is the exact amount
  (`49.99`, never `49.990000000000002`), as the old apps read it, with the
  integer minor units and the currency beside it for new apps to compute with.
  Every writer of JSON this project uses (Python's `json`, orjson, and
  JavaScript's) prints a float as the shortest text that reads back as the
  same float, and a decimal of at most 15 significant digits is that text for
  its nearest float. Every amount shown is below ten billion units (orders are
  refused beyond), so it has at most 13 significant digits. `format_minor` is
  the same amount as a decimal string (messages, stored copies).
* Accepted (`MoneyIn`): a JSON number (`49.99`, `5`, `4.999e1`), or a decimal
  string (`"19.99"`, `"5"`: digits, at most one point, no sign, no spaces).
  A number is read by its decimal text, never through a binary float: the REST
  routes parse JSON numbers as `Decimal` (`gateway/rest/exact_json.py`).
  Either way at most as many decimals as the shop's currency has (a number's
  trailing zeros do not count: `49.990` is 49.99). Every amount is below ten
  billion units.

The OpenAPI document states exactly this (`money_schema`): a `pattern` for the
string and a `number` that is a `multipleOf` the currency's minor unit, with
its bounds.
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


def _digits(amount: Decimal) -> tuple[int, int]:
    """(significant digits, decimals) of a finite decimal's value, trailing zeros
    not counted, without rounding (`Decimal.normalize` rounds to the context's precision)."""
    _, digits, exp = amount.as_tuple()
    assert isinstance(exp, int)
    if not any(digits):
        return 0, 0
    end = len(digits)
    while end > 1 and digits[end - 1] == 0:
        end -= 1
        exp += 1
    return end, max(0, -exp)


def parse_amount(value: Any) -> Decimal:
    """A non-negative exact decimal from a JSON number (an int, a `Decimal` as
    the REST routes parse numbers, or a float, read by its shortest text as
    JavaScript writes it) or a decimal string. Booleans, exponents in strings,
    signs, spaces, infinities, more than `MAX_DECIMALS` decimals and anything
    from `MAX_UNITS` up are refused."""
    if isinstance(value, bool):
        raise MoneyError('send money as a number such as 19.99 or a decimal string such as "19.99"')
    if isinstance(value, float):
        value = Decimal(repr(value))  # the float's shortest text: what a JSON writer sent for it
    if isinstance(value, int):
        value = Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite() or not 0 <= value < MAX_UNITS:
            raise MoneyError(f"amount out of range: 0 to {MAX_UNITS - 1}.{'9' * MAX_DECIMALS}")
        if _digits(value)[1] > MAX_DECIMALS:
            raise MoneyError(f"an amount has at most {MAX_DECIMALS} decimals")
        return value + 0  # -0 is 0; exact: at most 13 significant digits

    if isinstance(value, str) and _ANY_DECIMALS.fullmatch(value):
        return Decimal(value)
    raise MoneyError('send money as a number such as 19.99 or a decimal string such as "19.99" (no sign)')


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


EXACT_FLOAT_DIGITS = 15
"""A decimal with at most this many significant digits is the shortest text of its nearest float."""


def max_minor(currency: str) -> int:
    """The largest amount in minor units (just below `MAX_UNITS` units): the most an order may total."""
    most: int = MAX_UNITS * 10 ** exponent(currency) - 1
    return most


def money_number(minor: int, currency: str) -> float:
    """Integer minor units -> the float whose shortest text is the exact amount
    (`4999`, USD -> `49.99`, written `49.99` by every JSON writer here).
    Raises `MoneyError` for an amount of more than `EXACT_FLOAT_DIGITS`
    significant digits, which no float writes exactly (never below `MAX_UNITS`)."""
    return decimal_number(Decimal(format_minor(minor, currency)))


def decimal_number(amount: Decimal) -> float:
    """An exact decimal -> the float whose shortest text is that decimal (see `money_number`)."""
    if _digits(amount)[0] > EXACT_FLOAT_DIGITS:
        raise MoneyError(f"{amount} has more than {EXACT_FLOAT_DIGITS} digits: no JSON number writes it exactly")
    return float(amount)


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
    step = decimal_number(Decimal(1).scaleb(-decimals))
    return {
        "anyOf": [
            {
                "type": "number",
                "minimum": 0,
                "maximum": decimal_number(Decimal(MAX_UNITS) - Decimal(1).scaleb(-decimals)),
                "multipleOf": step,
                "description": f"read by its decimal text, at most {decimals} decimals ({currency})",
            },
            {
                "type": "string",
                "pattern": decimal_pattern(decimals),
                "description": f"exact decimal, at most {decimals} decimals ({currency})",
            },
        ],
        "description": f"an amount in {currency}: a JSON number (its decimal text is the amount) "
        "or an exact decimal string",
        "examples": [49.99 if decimals else 1999],
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
