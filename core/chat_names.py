"""Who a chat message says it is from: one rule for the WebSocket and REST.

- A logged-in account chats under its account's display name, whatever name the frame
  carries (`chat_name`): nobody has to repeat `username` in every frame, and nobody
  logged in can chat as someone else.
- A guest picks a name, but not one kept for the shop's staff (`RESERVED_NAMES` and the
  shop's own name): refused with `NameReserved` (code `name_reserved`). The comparison sees
  through case, spaces and punctuation, accents, full-width letters and look-alike letters
  and digits (`Ad min`, `ADM1N`, `admin` with a Cyrillic a, `support_team`). REST applies
  the same check to the name an account registers with (`gateway/rest/auth.py`), since that
  name is what its chat carries.

Pure: no I/O; the gateway passes the configured shop name in.
"""

from __future__ import annotations

import re
import unicodedata

NAME_RESERVED = "name_reserved"
RESERVED_NAMES = (
    "admin",
    "administrator",
    "moderator",
    "staff",
    "support",
    "wrencos",
)
# Letters that pass for Latin ones (escaped: the source shows them as the letters they imitate):
# Cyrillic and Greek look-alikes, then the digits and signs people use for letters.
_LOOKALIKES = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0445\u0443\u0456\u0458\u0455\u0501\u04bb\u043c\u0442\u043a\u0432\u043d"
    "\u03b1\u03bf\u03c1\u03b9\u03ba\u03bd\u03c4\u03c5\u03bc"
    "01l|!34@5$78",
    "aeopcxyijsdhmtkbhaopikvtumoiiiieaasstb",
)
_NOT_LETTER = re.compile(r"[^a-z]+")


class NameReserved(ValueError):
    """A guest asked for a staff name; the message is fit to show the sender."""

    code = NAME_RESERVED


def skeleton(text: str) -> str:
    """What a name looks like, in lower-case Latin letters and the separators it had:
    `ÁDM1N`, full-width `ADMIN`, `adrnin` and `admin` with a Cyrillic a all become `admin`."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.translate(_LOOKALIKES).replace("rn", "m").replace("vv", "w")


def _letters(text: str) -> str:
    return _NOT_LETTER.sub("", text)


def is_reserved(name: str, shop_name: str = "") -> bool:
    """Whether `name` passes for staff: it is, contains as a word, starts or ends with one
    of the reserved names (or the shop's name), seen through `skeleton`."""
    reserved = {_letters(skeleton(r)) for r in (*RESERVED_NAMES, shop_name)} - {""}
    shape = skeleton(name)
    whole = _letters(shape)
    if not whole:
        return False
    words = {_letters(w) for w in re.split(r"[\s_.\-]+", shape)}
    return any(r in words or whole.startswith(r) or whole.endswith(r) for r in reserved)


def check_guest_name(name: str, shop_name: str = "") -> str:
    """`name`, stripped, if a guest may use it; else NameReserved. An empty name is allowed
    (the stream shows the default, `core.limits.DEFAULT_USERNAME`)."""
    name = name.strip()
    if name and is_reserved(name, shop_name):
        raise NameReserved(f"The name {name[:50]!r} is kept for the shop's staff: choose another")
    return name


def chat_name(account_name: str | None, requested: str | None, shop_name: str = "") -> str:
    """The name a chat message carries: the account's display name when the sender is
    logged in (`account_name` not None; what the frame asks for is ignored), else the
    guest's requested name once `check_guest_name` allows it."""
    if account_name is not None:
        return account_name.strip()
    return check_guest_name(requested or "", shop_name)
