"""Creating the cluster's `StreamRegistry`: the Ray API call that makes it.
Finding and calling it is `RegistryClient`'s job."""

from __future__ import annotations

from typing import Any

import ray
from ray.actor import ActorHandle

from actors.config import ActorConfig
from actors.placement import (
    ACTOR_OPTIONS,
    REGISTRY_NAME,
    REGISTRY_RESOURCE,
    REGISTRY_SHARE,
)
from actors.registry_actor import StreamRegistry

_RemoteRegistry: Any = ray.remote(StreamRegistry)  # Ray's stubs cannot type what `options` returns


def ensure_registry(config: ActorConfig) -> ActorHandle:
    """The cluster's registry, created if it does not exist (safe against races)."""
    return _RemoteRegistry.options(
        name=REGISTRY_NAME, resources={REGISTRY_RESOURCE: REGISTRY_SHARE}, get_if_exists=True, **ACTOR_OPTIONS
    ).remote(config)
