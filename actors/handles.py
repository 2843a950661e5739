"""Every Ray API call that creates, finds or kills an actor lives here.

Actors are named in one namespace so any process of the cluster finds them
from a stream id: `stream:<id>` for a stream, `registry` for the directory.
Both are detached (they outlive the process that created them) and restarted
by Ray whenever their process dies (`max_restarts=-1`). Calls are not retried
by Ray (`max_task_retries=0`): callers retry themselves with idempotent batch
ids, which keeps retries visible and ordered.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.actor import ActorHandle

from actors.config import ActorConfig
from actors.registry_actor import StreamRegistry
from actors.stream_actor import StreamActor

REGISTRY_NAME = "registry"

_RemoteStream = ray.remote(StreamActor)
_RemoteRegistry = ray.remote(StreamRegistry)

# Actors wait on I/O, not the CPU: they reserve no CPU so that hundreds fit a node.
_COMMON: dict[str, Any] = {
    "lifetime": "detached",
    "max_restarts": -1,
    "max_task_retries": 0,
    "num_cpus": 0,
    "get_if_exists": True,
}


def stream_actor_name(stream_id: str) -> str:
    return f"stream:{stream_id}"


def create_stream_actor(stream_id: str, meta: dict[str, Any], config: ActorConfig) -> ActorHandle:
    """The stream's actor, created if it does not exist (safe against races)."""
    return _RemoteStream.options(name=stream_actor_name(stream_id), **_COMMON).remote(stream_id, meta, config)


def find_stream_actor(stream_id: str) -> ActorHandle | None:
    try:
        return ray.get_actor(stream_actor_name(stream_id))
    except ValueError:
        return None


def ensure_registry(config: ActorConfig) -> ActorHandle:
    """The cluster's registry, created if it does not exist."""
    return _RemoteRegistry.options(name=REGISTRY_NAME, **_COMMON).remote(config)


def find_registry() -> ActorHandle | None:
    try:
        return ray.get_actor(REGISTRY_NAME)
    except ValueError:
        return None


def kill(handle: ActorHandle) -> None:
    """End an actor for good (no restart)."""
    ray.kill(handle, no_restart=True)
