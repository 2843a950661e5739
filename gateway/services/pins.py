"""Pinning catalogue products over a live stream's video: one rule for REST
(`POST/DELETE /livestreams/{id}/pin`) and the WebSocket (`pin_product`,
`unpin_product`).

What a pin shows comes from the catalogue (`persistence/products.py`), never
from the caller: the product's name, its one image (`main_image`), and its price as an
exact decimal string in the product's currency (`core/money.py`). A product
the catalogue does not have is refused (`not_found`). Pinning a pinned product
again refreshes it from the catalogue (and moves it with `display_order`).

Guarantees: a pin or unpin is a command to the stream, queued in the order the
caller queues it and answered once the stream has stored it (its journal is
durable; viewers then get `pinned_products_updated`). The pinned copy keeps
the values it was pinned with until it is pinned again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from core.commands import PinProduct, UnpinProduct
from core.money import format_minor
from core.results import Result
from gateway.services.errors import NOT_FOUND, ServiceError
from gateway.services.inputs import Integral
from gateway.services.stream_commands import LiveStreams, Queued
from persistence.products import ProductStore, main_image

MAX_DISPLAY_ORDER = 10_000
DisplayOrder = Annotated[int, Field(strict=True, ge=0, le=MAX_DISPLAY_ORDER), Integral]
"""Where a pinned product sits (0 first); absent: after the others, or where it was."""


@dataclass(frozen=True)
class PinnedProduct:
    """A product as the stream shows it while pinned (`price`: exact, in `currency`;
    the stream keeps this decimal string, `core.wire.pinned_product` shows it as a number)."""

    product_id: str
    name: str
    price: str
    price_minor: int
    currency: str
    image: str | None
    display_order: int | None


class PinService:
    def __init__(self, products: ProductStore, live: LiveStreams) -> None:
        self.products = products
        self.live = live

    async def pin(self, stream_id: str, product_id: str, display_order: int | None = None) -> Queued[PinnedProduct]:
        """Queue the pin of catalogue product `product_id` (`display_order` as
        parsed by `DisplayOrder`, on both paths). Refused: the stream is
        not live (`not_found`/`not_live`), the product does not exist (`not_found`);
        once queued, whatever the stream refuses (at most so many pinned)."""
        relay = await self.live.relay(stream_id)
        product = await self.products.get(product_id)
        if product is None:
            raise ServiceError(NOT_FOUND, f"Product {product_id} does not exist")
        pinned = pinned_from(product, display_order)
        future = relay.submit(
            PinProduct(
                product_id=pinned.product_id,
                name=pinned.name,
                price=pinned.price,
                currency=pinned.currency,
                image=pinned.image,
                display_order=display_order,
            )
        )
        return Queued(future, lambda _: pinned)

    async def unpin(self, stream_id: str, product_id: str) -> Queued[None]:
        """Queue taking `product_id` down. The stream refuses a product that is not pinned."""
        relay = await self.live.relay(stream_id)
        return Queued(relay.submit(UnpinProduct(product_id)), _nothing)


def pinned_from(product: dict[str, Any], display_order: int | None) -> PinnedProduct:
    """A stored catalogue product as it is pinned: its one image, its exact price."""
    return PinnedProduct(
        product_id=product["_id"],
        name=product["name"],
        price=format_minor(int(product["priceMinor"]), product["currency"]),
        price_minor=int(product["priceMinor"]),
        currency=product["currency"],
        image=main_image(product),
        display_order=display_order,
    )


def _nothing(_: Result) -> None:
    return None
