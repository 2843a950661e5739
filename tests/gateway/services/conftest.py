"""The services against the real embedded database and a real `StreamRelay`
and `LiveDirectory`, with the stream's actor played in-process by the real
`StreamState` (its rules, not a fake of them): no Ray needed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from actors.stream_client import StreamClient
from core.commands import Command
from core.commit import apply_batch
from core.results import Result
from core.state import StreamMeta, StreamState
from gateway.streams.hub import Hub
from gateway.streams.live_directory import LiveDirectory
from gateway.streams.stream_relay import StreamRelay
from persistence.products import ProductStore
from persistence.streams import StreamStore
from tests.persistence.conftest import db  # noqa: F401  (the fixture: a fresh database per test)


class InProcessActor:
    """Plays a stream client's `submit` with the real state machine."""

    def __init__(self, stream_id: str) -> None:
        self.state = StreamState(meta=StreamMeta(stream_id=stream_id, title="t"))
        self.commands: list[Command] = []

    async def submit(self, gateway_id: str, batch_id: str, commands: list[Command]) -> list[Result]:
        self.commands.extend(commands)
        return apply_batch(self.state, gateway_id, batch_id, commands, datetime.now(UTC))


class Live:
    """A directory with streams made live on demand, each with its relay sending to an `InProcessActor`."""

    def __init__(self, streams: StreamStore) -> None:
        self.streams = streams
        self.directory = LiveDirectory(Hub(), "gw-test")
        self.actors: dict[str, InProcessActor] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def stream(self, live: bool = True) -> str:
        record = await self.streams.create(title="t", description="", stream_url="", quality="auto", host_id="h")
        stream_id = str(record["_id"])
        if live:
            actor = InProcessActor(stream_id)
            # the client the live set would name for the stream
            relay = StreamRelay(stream_id, "gw-test", self.directory.hub, lambda: cast(StreamClient, actor))
            self._tasks.append(asyncio.create_task(relay._send_forever()))
            self.directory.relays[stream_id] = relay
            self.directory.live[stream_id] = {"streamId": stream_id}
            self.actors[stream_id] = actor
        return stream_id

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def live(db: AsyncDatabase) -> AsyncIterator[Live]:  # noqa: F811
    streams = Live(StreamStore(db))
    yield streams
    await streams.close()


@pytest.fixture
def products(db: AsyncDatabase) -> ProductStore:  # noqa: F811
    return ProductStore(db)


async def new_product(
    products: ProductStore,
    price_minor: int = 1230,
    name: str = "Lamp",
    images: list[str] | None = None,
    stock: int = 10,
    currency: str = "EUR",
) -> dict[str, Any]:
    images = ["https://cdn.example.com/lamp.jpg"] if images is None else images
    return await products.create(
        name=name, description="", price_minor=price_minor, currency=currency, stock=stock, images=images, category=None
    )


async def stock_of(products: ProductStore, product_id: str) -> int:
    product = await products.get(product_id)
    assert product is not None
    return int(product["stock"])
