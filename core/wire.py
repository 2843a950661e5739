"""The one place where stream events become the text clients receive.

Each event is encoded once, in the actor; every gateway and every socket gets
the same text. The envelope (`type`, `streamId`, `seq`, `epoch`) is added here.

Documents in events have the shapes the old apps read (`stream_document`,
`pinned_product`): `_id` beside the id they already carry, and money as a JSON
number whose text is exact (`core/money.py`), beside its minor units. Both
shapers are idempotent, so a gateway that shapes what it decoded again (its
`StreamView`) holds what the actor holds.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import orjson

from core.events import Event
from core.money import EXACT_FLOAT_DIGITS, decimal_number

_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


def encode_event(stream_id: str, epoch: str, event: Event) -> str:
    body = event.body
    if event.type == "chat_message":
        body = chat_message_shown(body)
    elif "pinnedProducts" in body:
        body = {**body, "pinnedProducts": pinned_products(body["pinnedProducts"])}
    return orjson.dumps({"type": event.type, **body, "streamId": stream_id, "seq": event.seq, "epoch": epoch}).decode()


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def decode(text: str | bytes) -> Any:
    return orjson.loads(text)


def pinned_product(pinned: dict[str, Any]) -> dict[str, Any]:
    """A pinned product as it is shown: `_id` (its product's id, as `productId`),
    `price` as an exact JSON number and `priceMinor` beside it (both in the
    record's `currency`, which the pin rule stores). A stream keeps
    the price it was pinned with as the decimal string the catalogue wrote
    (`format_minor`: exactly the currency's decimals), so its minor units are
    that string's digits. Idempotent; a price in no such form is left as it is."""
    shown = {**pinned, "_id": pinned["productId"]}
    price = pinned.get("price")
    if isinstance(price, str) and _DECIMAL.fullmatch(price) and len(price) <= EXACT_FLOAT_DIGITS + 1:
        amount = Decimal(price)
        shown["price"] = decimal_number(amount)
        shown["priceMinor"] = int(price.replace(".", ""))
    return shown


def chat_message_shown(message: dict[str, Any]) -> dict[str, Any]:
    """A chat message as it is shown: `_id` beside `id`, the same value (its `seq`), as the old apps
    read every document. Added here, where it is written, never to the stream's events themselves:
    a journal replays those, and must replay them as they were stored."""
    return {**message, "_id": message["id"]}


def pinned_products(pinned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [pinned_product(p) for p in pinned]


def stream_document(stream_data: dict[str, Any]) -> dict[str, Any]:
    """A stream's `streamData` as it is shown: `_id` (as `streamId`) and its pinned products shaped. Idempotent."""
    shown = {**stream_data}
    if "streamId" in shown:
        shown["_id"] = shown["streamId"]
    if "pinnedProducts" in shown:
        shown["pinnedProducts"] = pinned_products(shown["pinnedProducts"])
    return shown
