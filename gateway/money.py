"""Money as the API shows it and the database stores it. Pure: no I/O.

* Stored: integer minor units (`priceMinor`, `totalMinor`, ...) plus an ISO
  4217 `currency` code. Sums are integer sums, so they are exact.
* Shown: an exact decimal string with the currency's number of decimals
  (`"19.99"`, `"1200"` for JPY).
* Accepted: a decimal string (`"19.99"`, `"5"`) or a JSON integer meaning whole
  units (`5` is 5.00). A JSON number with a fraction (`19.99`) is refused,
  because a binary float cannot hold most prices exactly.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

# Currencies whose minor unit is not a hundredth (ISO 4217); everything else has 2 decimals.
EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "UGX": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}
MAX_UNITS = 10**10  # no single amount at or above ten billion units
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,10})(\.[0-9]{1,3})?$")


class MoneyError(ValueError):
    """An amount that cannot be money: the message says what to send."""


def exponent(currency: str) -> int:
    return EXPONENTS.get(currency.upper(), 2)


def parse_amount(value: Any) -> Decimal:
    """A non-negative exact decimal from a string or an integer. Floats, booleans,
    exponents, signs and more than 3 decimals are refused."""
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError('send money as a decimal string such as "19.99" (or a whole number), never a float')
    if isinstance(value, int):
        if not 0 <= value < MAX_UNITS:
            raise MoneyError("amount out of range")
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL.match(value.strip()):
        amount = Decimal(value.strip())
        if amount >= MAX_UNITS:
            raise MoneyError("amount out of range")
        return amount
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


def _validate(value: Any) -> Decimal:
    try:
        return parse_amount(value)
    except MoneyError as e:
        raise ValueError(str(e)) from e


MoneyIn = Annotated[
    Decimal,
    BeforeValidator(_validate),
    WithJsonSchema({"type": "string", "pattern": _DECIMAL.pattern, "examples": ["19.99"],
                    "description": "an exact decimal string (or a whole number); floats are refused"}),
]
"""A request field holding an amount: validated to an exact `Decimal`, never a float."""
