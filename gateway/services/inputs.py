"""Input field rules that both transports parse with (REST bodies and WebSocket
frames), so the same value is accepted or refused, with the same words, on both.

* `Integral`: JSON Schema's `integer` is a value, not a spelling: `2.0` is
  an integer. Accepted: JSON integers and whole-valued numbers (as `int`), within
  the bounds, whether a number was parsed as a float (WebSocket frames) or as
  an exact `Decimal` (REST bodies, `gateway/rest/exact_json.py`). Refused:
  fractions, booleans, strings ("2"), infinities.
* `NotBlank`: lengths count the string as sent (as `minLength`/`maxLength`
  do); surrounding whitespace is then stripped, and a value that is whitespace
  only is refused by a `pattern` that says so. "Whitespace" is one explicit set
  (Unicode `White_Space`), the same in the pattern and in the stripping, so no
  regex engine's reading of `\\s` decides anything.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import AfterValidator, BeforeValidator

# ------------------------------------------------------------------ integers


_WHOLE_DIGITS = 30  # far beyond any bound here; keeps int() of `1e999999999` from running for ever


def _integral(value: Any) -> Any:
    """A whole-valued float or Decimal becomes the int it equals; anything else passes
    on unchanged to the strict int validation (which refuses it unless it is an int)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() < _WHOLE_DIGITS
        and value == value.to_integral_value()
    ):
        return int(value)
    return value


Integral = BeforeValidator(_integral)
"""Last in `Annotated[int, Field(strict=True, ge=..., le=...), Integral]`: an
integer field that takes JSON integers and whole-valued numbers (`2.0`), and
refuses fractions, booleans and strings."""


# ------------------------------------------------------------------ text

# Unicode White_Space (what pydantic's `strip_whitespace` and most languages'
# trim remove; Python's `str.isspace` adds U+001C-U+001F), spelled out so every
# regex engine reads the same set.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
NOT_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in WHITESPACE) + "]"
"""A pattern (unanchored) that matches any string with a character that is not whitespace."""


def _not_blank(value: str) -> str:
    """`NOT_BLANK`, enforced (with a readable message), then stripped."""
    stripped = value.strip(WHITESPACE)
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


NOT_BLANK_SCHEMA: dict[str, Any] = {"pattern": NOT_BLANK}
NotBlank = AfterValidator(_not_blank)
"""Last in `Annotated[str, Field(min_length=1, max_length=..., json_schema_extra=NOT_BLANK_SCHEMA), NotBlank]`:
lengths count the string as sent; whitespace only is refused; the value is stored stripped."""
