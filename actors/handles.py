"""Every Ray API call that creates, finds or kills an actor lives here.

Actors are named in one namespace so any process of the cluster finds them:
`registry` for the directory, `stream:<id>` for a stream actor created for its
stream, `slot:<hex>` for one started ahead of time (a spare) that adopted a
stream; `find_stream_actor` finds either from the stream id.
Both are detached (they outlive the process that created them) and restarted
by Ray whenever their process dies (`max_restarts=-1`). Calls are not retried
by Ray (`max_task_retries=0`): callers retry themselves with idempotent batch
ids, which keeps retries visible and ordered.
"""

from __future__ import annotations

import secrets
import time
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


def create_spare_actor(config: ActorConfig) -> ActorHandle:
    """A stream actor started ahead of time; it serves the stream it `adopt`s."""
    options = {k: v for k, v in _COMMON.items() if k != "get_if_exists"}
    return _RemoteStream.options(name=f"slot:{secrets.token_hex(6)}", **options).remote(None, None, config)


def spare_names() -> list[str]:
    """The names of every pooled stream actor in this namespace (adopted or not)."""
    from ray.util import list_named_actors

    return [n for n in list_named_actors() if n.startswith("slot:")]


def get_actor(name: str) -> ActorHandle | None:
    try:
        return ray.get_actor(name)
    except ValueError:
        return None


def find_stream_actor(stream_id: str, timeout: float = 10.0) -> ActorHandle | None:
    """The actor serving a live stream, by its name or else through the registry."""
    handle = get_actor(stream_actor_name(stream_id))
    if handle is not None:
        return handle
    registry = find_registry()
    if registry is None:
        return None
    deadline = time.monotonic() + timeout
    while True:  # the registry may be restarting: wait for it, within `timeout`
        try:
            return ray.get(registry.actor_for.remote(stream_id), timeout=max(0.1, deadline - time.monotonic()))  # type: ignore[no-any-return]
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
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
