"""Request field types whose OpenAPI schema says exactly what the server accepts.

The OpenAPI document is a contract: a value valid against a field's JSON Schema
is accepted by that field's validator, and a value the schema refuses is refused
(422). Pydantic's defaults drift from JSON Schema in a few places, so the REST
request models use these types instead:

* `HttpUrl`: an http(s) URL, whitespace only around it (stripped).
* `Integral` (whole-valued numbers, not their spelling) and `NotBlank` (lengths
  as sent, whitespace-only refused, then stripped): in `gateway/services/inputs.py`,
  since the WebSocket's frames parse with them too.
* `Id`, `IdempotencyKey`: a stored document's id in a body, and the
  `Idempotency-Key` header.
* `DateTimeIn`: an RFC 3339 `date-time` string with an offset (what the
  `date-time` format is), years 2000-2999 (stated as a `pattern`), never a
  number; parsed to an aware `datetime`. Leap seconds (`23:59:60` UTC) count as
  the last microsecond before the next minute.
* `DayIn`: an RFC 3339 `full-date` (`YYYY-MM-DD`, a real day), kept as a string.
* `EmailIn`: an ASCII address (`local@host.domain`), stated as a `pattern`,
  within the limits of the `email` format (local part up to 64 characters,
  domain up to 253, labels up to 63), lower-cased.
* `present(field)`, `one_of`/`any_of`/`not_both`: request-level rules ("send
  one of ...") as JSON Schema, for a model's `json_schema_extra`. A field sent
  as `null` counts as absent, as it does for the models.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import Header
from pydantic import AfterValidator, BeforeValidator, StringConstraints, WithJsonSchema

from gateway.services.inputs import NOT_BLANK, WHITESPACE

_SPACE = "[" + NOT_BLANK[2:]  # any of WHITESPACE
HTTP_URL_SCHEMA: dict[str, Any] = {"pattern": f"^{_SPACE}*https?://{NOT_BLANK}+{_SPACE}*$"}


def _http_url(value: str) -> str:
    """`HTTP_URL_SCHEMA`'s pattern, enforced, then stripped."""
    url = value.strip(WHITESPACE)
    scheme, sep, rest = url.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or any(c in WHITESPACE for c in rest):
        raise ValueError("send an http(s) URL without spaces")
    return url


HttpUrl = AfterValidator(_http_url)
"""Last in `Annotated[str, Field(max_length=..., json_schema_extra=HTTP_URL_SCHEMA), HttpUrl]`: an http(s)
URL with no whitespace inside (surrounding whitespace allowed, and stripped)."""


# ------------------------------------------------------------------ dates

_DATE = r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
_RFC3339 = re.compile(_DATE + r"[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|([+-])([0-9]{2}):([0-9]{2}))")
_FULL_DATE = re.compile(_DATE)
YEARS_PATTERN = "^2[0-9]{3}-"
"""Date-times in requests lie in the years 2000-2999 (local time as written)."""


def _days_in(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _real_day(year: int, month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= _days_in(year, month)


def parse_rfc3339(value: Any) -> datetime:
    """An aware `datetime` from an RFC 3339 `date-time` string in the years
    2000-2999. Raises ValueError for anything else (numbers, naive times,
    impossible days, other spellings)."""
    if not isinstance(value, str):
        raise ValueError("send a date-time as an RFC 3339 string, e.g. 2030-01-31T18:00:00Z")
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise ValueError("not an RFC 3339 date-time with an offset (e.g. 2030-01-31T18:00:00Z)")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    fraction, zone, sign, off_h, off_m = m.group(7), m.group(8), m.group(9), m.group(10), m.group(11)
    if not 2000 <= year <= 2999:
        raise ValueError("date-times must lie in the years 2000-2999")
    if not _real_day(year, month, day) or hour > 23 or minute > 59 or second > 60:
        raise ValueError("not a real date and time")
    offset = timedelta(0)
    if zone not in ("Z", "z"):
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError("not a real time zone offset")
        offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (1 if sign == "+" else -1)
    leap = second == 60
    if leap:
        # RFC 3339 allows a leap second at 23:59:60 UTC only.
        utc_minutes = (hour * 60 + minute - offset.total_seconds() // 60) % (24 * 60)
        if utc_minutes != 23 * 60 + 59:
            raise ValueError("a leap second is 23:59:60 UTC")
        second = 59
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    if leap:
        micro = 999_999
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone(offset))


def parse_full_date(value: Any) -> str:
    """`value` if it is an RFC 3339 `full-date` (`YYYY-MM-DD`, a real day); else ValueError."""
    if not isinstance(value, str):
        raise ValueError("send a day as YYYY-MM-DD")
    m = _FULL_DATE.fullmatch(value)
    if m is None or not _real_day(int(m.group(1)), int(m.group(2)), int(m.group(3))):
        raise ValueError("not a real day as YYYY-MM-DD")
    return value


DateTimeIn = Annotated[
    datetime,
    BeforeValidator(parse_rfc3339),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": YEARS_PATTERN,
            "description": "RFC 3339 with an offset, years 2000-2999",
            "examples": ["2030-01-31T18:00:00Z"],
        }
    ),
]
"""A request date-time: an RFC 3339 string with an offset, never a number."""

DayIn = Annotated[
    str,
    BeforeValidator(parse_full_date),
    WithJsonSchema({"type": "string", "format": "date", "examples": ["2030-01-31"]}),
]
"""A request day (UTC), `YYYY-MM-DD`, kept as the string sent."""


# ------------------------------------------------------------------ email

_ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = f"^{_ATOM}(?:\\.{_ATOM})*@(?:{_LABEL}\\.)+{_LABEL}$"
_EMAIL = re.compile(EMAIL_PATTERN.removeprefix("^").removesuffix("$"))
MAX_EMAIL = 254


def parse_email(value: Any) -> str:
    """`value`, lower-cased, if it is an address the schema describes; else ValueError."""
    if not isinstance(value, str) or len(value) > MAX_EMAIL or _EMAIL.fullmatch(value) is None:
        raise ValueError("not an email address (ASCII, local@host.domain)")
    local, _, domain = value.rpartition("@")
    if len(local) > 64 or len(domain) > 253:
        raise ValueError("not an email address: the part before @ has at most 64 characters, after it 253")
    return value.lower()


EmailIn = Annotated[
    str,
    BeforeValidator(parse_email),
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "pattern": EMAIL_PATTERN,
            "maxLength": MAX_EMAIL,
            "examples": ["ada@example.com"],
        }
    ),
]


# ------------------------------------------------------------------ ids

ID_PATTERN = r"^[0-9a-f]{24}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""A stored document's id in a body (24 hex characters)."""
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="A retried request with the same key (from the same account) has its first effect only",
    ),
]


# ------------------------------------------------------------------ request-level rules


def present(field: str) -> dict[str, Any]:
    """JSON Schema: `field` is sent and is not null."""
    return {"required": [field], "properties": {field: {"not": {"type": "null"}}}}


def any_of(*fields: str) -> dict[str, Any]:
    """At least one of `fields` is sent (not null)."""
    return {"anyOf": [present(f) for f in fields]}


def one_of(*fields: str) -> dict[str, Any]:
    """Exactly one of `fields` is sent (not null)."""
    return {"oneOf": [present(f) for f in fields]}


def not_both(a: str, b: str) -> dict[str, Any]:
    """`a` and `b` are not both sent (not null)."""
    return {"not": {"allOf": [present(a), present(b)]}}
