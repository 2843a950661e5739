"""Creating, finding and ending stream actors (spares included): the Ray API
calls that make them. Calling them is `StreamClient`'s job.

Names and options are `placement`'s: a stream actor created for its stream is
`stream:<id>` (created if it does not exist, safe against races); a spare is
`slot:<hex>` and serves the stream it adopts.
"""

from __future__ import annotations

import secrets
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.util import list_named_actors

from actors.config import ActorConfig
from actors.placement import (
    ACTOR_OPTIONS,
    SPARE_PREFIX,
    STREAM_RESOURCE,
    stream_actor_name,
)
from actors.stream_actor import StreamActor

_RemoteStream: Any = ray.remote(StreamActor)  # Ray's stubs cannot type what `options` returns


def create_stream_actor(stream_id: str, meta: dict[str, Any], config: ActorConfig) -> ActorHandle:
    """The stream's actor, created if it does not exist (safe against races)."""
    return _RemoteStream.options(
        name=stream_actor_name(stream_id), resources={STREAM_RESOURCE: 1}, get_if_exists=True, **ACTOR_OPTIONS
    ).remote(stream_id, meta, config)


def create_spare_actor(config: ActorConfig) -> ActorHandle:
    """A stream actor started ahead of time; it serves the stream it `adopt`s."""
    return _RemoteStream.options(
        name=f"{SPARE_PREFIX}{secrets.token_hex(6)}", resources={STREAM_RESOURCE: 1}, **ACTOR_OPTIONS
    ).remote(None, None, config)


def spare_names() -> list[str]:
    """The names of every pooled stream actor in this namespace (adopted or not)."""
    return [n for n in list_named_actors() if n.startswith(SPARE_PREFIX)]


def find_actor(name: str) -> ActorHandle | None:
    """The actor of that name in this namespace, if it exists."""
    try:
        return ray.get_actor(name)
    except ValueError:
        return None


def free_stream_units() -> float:
    """How many `stream` units the cluster has free now (a blocking call to Ray's control store)."""
    return float(ray.available_resources().get(STREAM_RESOURCE, 0.0))


def kill(handle: ActorHandle) -> None:
    """End an actor for good (no restart)."""
    ray.kill(handle, no_restart=True)
