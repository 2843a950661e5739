"""The pin service: what is pinned comes from the catalogue, as exact money,
whoever asks; refusals are one `ServiceError` with a stable code."""

from __future__ import annotations

import pytest

from core.commands import PinProduct, UnpinProduct
from gateway.services.errors import NOT_FOUND, NOT_LIVE, REJECTED, ServiceError
from gateway.services.pins import PinnedProduct, PinService
from gateway.services.stream_commands import LiveStreams
from persistence.products import ProductStore
from tests.gateway.services.conftest import Live, new_product


def service(live: Live, products: ProductStore) -> PinService:
    return PinService(products, LiveStreams(live.directory, live.streams))


async def test_a_pin_takes_name_image_and_exact_price_from_the_catalogue(live: Live, products: ProductStore) -> None:
    stream = await live.stream()
    lamp = await new_product(products, price_minor=1230, name="Lamp")
    pinned = await (await service(live, products).pin(stream, lamp["_id"], 3)).stored()
    assert pinned == PinnedProduct(
        product_id=lamp["_id"],
        name="Lamp",
        price="12.30",
        price_minor=1230,
        currency="EUR",
        image="https://cdn.example.com/lamp.jpg",
        display_order=3,
    )
    assert live.actors[stream].commands == [
        PinProduct(
            product_id=lamp["_id"],
            name="Lamp",
            price="12.30",
            image="https://cdn.example.com/lamp.jpg",
            display_order=3,
            currency="EUR",
        )
    ]
    assert live.actors[stream].state.pinned_list() == [
        {
            "productId": lamp["_id"],
            "name": "Lamp",
            "price": "12.30",
            "currency": "EUR",
            "image": "https://cdn.example.com/lamp.jpg",
            "displayOrder": 3,
        }
    ]


async def test_a_product_without_images_is_pinned_without_one_and_zero_decimals_stay(
    live: Live, products: ProductStore
) -> None:
    stream = await live.stream()
    mug = await new_product(products, price_minor=400, name="Mug", images=[])
    pinned = await (await service(live, products).pin(stream, mug["_id"])).stored()
    assert (pinned.price, pinned.image, pinned.display_order) == ("4.00", None, None)


async def test_an_unknown_product_is_refused_before_anything_reaches_the_stream(
    live: Live, products: ProductStore
) -> None:
    stream = await live.stream()
    with pytest.raises(ServiceError) as refused:
        await service(live, products).pin(stream, "p-boot")
    assert (refused.value.code, refused.value.message) == (NOT_FOUND, "Product p-boot does not exist")
    assert live.actors[stream].commands == []


async def test_a_deleted_product_cannot_be_pinned(live: Live, products: ProductStore) -> None:
    stream = await live.stream()
    gone = await new_product(products)
    assert await products.delete(gone["_id"])
    with pytest.raises(ServiceError) as refused:
        await service(live, products).pin(stream, gone["_id"])
    assert refused.value.code == NOT_FOUND


async def test_streams_that_are_not_live_or_do_not_exist(live: Live, products: ProductStore) -> None:
    lamp = await new_product(products)
    scheduled = await live.stream(live=False)
    pins = service(live, products)
    with pytest.raises(ServiceError) as not_live:
        await pins.pin(scheduled, lamp["_id"])
    with pytest.raises(ServiceError) as missing:
        await pins.unpin("0" * 24, lamp["_id"])
    assert (not_live.value.code, not_live.value.message) == (NOT_LIVE, "This stream is not live")
    assert (missing.value.code, missing.value.message) == (NOT_FOUND, f"Stream {'0' * 24} does not exist")


async def test_unpin_takes_down_and_a_second_unpin_is_the_streams_refusal(live: Live, products: ProductStore) -> None:
    stream = await live.stream()
    lamp = await new_product(products)
    pins = service(live, products)
    await (await pins.pin(stream, lamp["_id"])).stored()
    await (await pins.unpin(stream, lamp["_id"])).stored()  # stored: no refusal raised
    with pytest.raises(ServiceError) as refused:
        await (await pins.unpin(stream, lamp["_id"])).stored()
    assert (refused.value.code, refused.value.message) == (REJECTED, f"product {lamp['_id']} is not pinned")
    assert live.actors[stream].commands[1:] == [UnpinProduct(lamp["_id"])] * 2
    assert live.actors[stream].state.pinned_list() == []


async def test_pinning_again_refreshes_from_the_catalogue(live: Live, products: ProductStore) -> None:
    stream = await live.stream()
    lamp = await new_product(products, price_minor=1230)
    pins = service(live, products)
    await (await pins.pin(stream, lamp["_id"])).stored()
    await products.update(lamp["_id"], {"priceMinor": 999, "name": "Lamp (sale)"}, 0)
    assert live.actors[stream].state.pinned_list()[0]["price"] == "12.30"  # the pinned copy keeps its values
    await (await pins.pin(stream, lamp["_id"])).stored()
    assert [(p["name"], p["price"]) for p in live.actors[stream].state.pinned_list()] == [("Lamp (sale)", "9.99")]


async def test_refusals_can_be_answered_without_waiting(live: Live, products: ProductStore) -> None:
    """What the WebSocket does: queue, go on, hear about a refusal later."""
    stream = await live.stream()
    pins = service(live, products)
    refusals: list[ServiceError] = []
    stored: list[None] = []
    (await pins.unpin(stream, "never-pinned")).when_stored(refusals.append, stored.append)
    lamp = await new_product(products)
    queued = await pins.pin(stream, lamp["_id"])
    queued.when_stored(refusals.append)
    await queued.stored()
    assert [e.message for e in refusals] == ["product never-pinned is not pinned"] and stored == []
