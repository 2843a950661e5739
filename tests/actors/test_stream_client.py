"""`StreamClient` against real stream actors on a real Ray cluster (and the
embedded database): a call in flight while the actor's process is killed is
tried again and answered by the restarted actor; a call that outlasts its
timeout raises `CallTimedOut` in bounded time; an actor ended for good raises
`ActorGone` at once, without retries; the gateway's metrics see it all."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from actors import stream_lifecycle
from actors.call_policy import STREAM_CALLS, ActorGone, CallTimedOut
from actors.config import ActorConfig
from actors.stream_client import StreamClient
from gateway.metrics import GatewayMetrics
from persistence.database import DatabaseConfig
from persistence.embedded import EmbeddedMongo

pytestmark = pytest.mark.system


def calls(metrics: GatewayMetrics, method: str) -> float:
    return metrics.registry.get_sample_value("wrencos_actor_call_seconds_count", {"method": method}) or 0.0


def errors(metrics: GatewayMetrics, method: str, error: str) -> float:
    labels = {"method": method, "error": error}
    return metrics.registry.get_sample_value("wrencos_actor_call_errors_total", labels) or 0.0


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics()


@pytest.fixture
def config(embedded_db: EmbeddedMongo) -> ActorConfig:
    return ActorConfig(db=DatabaseConfig(uri=embedded_db.uri, name=f"t{uuid4().hex[:8]}"), spare_actors=0)


@pytest.fixture
async def stream(ray_cluster: str, config: ActorConfig, metrics: GatewayMetrics) -> AsyncIterator[StreamClient]:
    """A live stream's actor, loaded, called with the gateway's metrics as the observer."""
    stream_id = uuid4().hex[:24]
    handle = stream_lifecycle.create_stream_actor(stream_id, {"streamId": stream_id, "title": "client test"}, config)
    client = StreamClient(handle, stream_id, metrics)
    await client.ready()
    yield client
    stream_lifecycle.kill(handle)


async def test_a_call_in_flight_when_the_actor_restarts_is_tried_again_and_answered(
    stream: StreamClient, metrics: GatewayMetrics
) -> None:
    before = await stream.info()
    first = await stream.poll("gw-test", 0, None, 0.0)  # where the stream is (a snapshot: no epoch given)
    assert first.snapshot is not None
    polling = asyncio.create_task(stream.poll("gw-test", first.snapshot["seq"], first.epoch, 3.0))
    await asyncio.sleep(0.5)  # the long poll is waiting in the actor
    os.kill(before["pid"], signal.SIGKILL)
    result = await asyncio.wait_for(polling, 60)
    assert result.incarnation != before["incarnation"], "answered by the restarted actor"
    assert result.epoch == first.epoch
    assert errors(metrics, "poll", "ActorUnavailable") >= 1, "the killed attempt was seen, then tried again"
    assert (await stream.info())["pid"] != before["pid"]
    assert calls(metrics, "info") == 2 and calls(metrics, "poll") == 0  # long polls report no latency


async def test_a_call_that_outlasts_its_timeout_raises_the_timeout_error_in_bounded_time(
    ray_cluster: str, metrics: GatewayMetrics
) -> None:
    # The database is unreachable: the actor retries loading forever, so a snapshot never comes.
    nowhere = ActorConfig(
        db=DatabaseConfig(uri="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200", name="t0"), spare_actors=0
    )
    stream_id = uuid4().hex[:24]
    handle = stream_lifecycle.create_stream_actor(stream_id, {"streamId": stream_id, "title": "stuck"}, nowhere)
    client = StreamClient(handle, stream_id, metrics)
    try:
        await client.warm()  # the process is up (its load is what hangs)
        began = time.monotonic()
        with pytest.raises(CallTimedOut):
            await client.snapshot()
        took = time.monotonic() - began
        limit = STREAM_CALLS["snapshot"].timeout_s
        assert limit <= took < limit + 2.0
        assert errors(metrics, "snapshot", "CallTimedOut") == 1, "a timeout is not tried again"
    finally:
        stream_lifecycle.kill(handle)


async def test_an_actor_ended_for_good_raises_gone_at_once_without_retries(
    stream: StreamClient, metrics: GatewayMetrics
) -> None:
    await stream.info()
    stream_lifecycle.kill(stream.handle)
    deadline = time.monotonic() + 10
    while True:  # `ray.kill` is asynchronous: a call made just before the actor ends still reaches it
        try:
            await stream.info()
        except ActorGone:
            break
        assert time.monotonic() < deadline, "the killed actor still answers"
        await asyncio.sleep(0.05)
    began = time.monotonic()
    with pytest.raises(ActorGone):
        await stream.snapshot()
    assert time.monotonic() - began < 1.0
    assert errors(metrics, "snapshot", "ActorGone") == 1
    assert calls(metrics, "snapshot") == 0
