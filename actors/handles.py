"""Every Ray API call that creates, finds or kills an actor lives here.

Actors are named in one namespace so any process of the cluster finds them:
`registry` for the directory, `stream:<id>` for a stream actor created for its
stream, `slot:<hex>` for one started ahead of time (a spare) that adopted a
stream; `find_stream_actor` finds either from the stream id.
Both are detached (they outlive the process that created them) and restarted
by Ray whenever their process dies (`max_restarts=-1`). Calls are not retried
by Ray (`max_task_retries=0`): callers retry themselves with idempotent batch
ids, which keeps retries visible and ordered.

Placement is by Ray custom resources, so operators decide what runs where by
the resources each node offers (`ray start --resources`, `ray_cluster.yaml`):

* every stream actor (spares included) takes one unit of `stream`: a node
  offering `{"stream": 100}` holds up to 100 live streams;
* the registry runs where `registry` is offered (the head node; a hundredth
  of a unit per registry, one per Ray namespace);
* every gateway process holds one unit of `gateway` on its own node for as
  long as it lives (`reserve_gateway_seat`), so a gateway only runs where the
  node says gateways belong, and no node runs more than it offers.

When a node dies, Ray restarts its stream actors on other nodes that offer
`stream`; each recovers from its checkpoint.
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
STREAM_RESOURCE = "stream"
REGISTRY_RESOURCE = "registry"
GATEWAY_RESOURCE = "gateway"
# The registry asks for a sliver of `registry`: the resource says *where* registries run (the head,
# which offers 1), and one registry per Ray namespace (tests run several) all fit there.
REGISTRY_SHARE = 0.01
# What `wrencos run` and the tests give a single-node cluster: room for everything.
SINGLE_NODE_RESOURCES: dict[str, float] = {STREAM_RESOURCE: 10_000, REGISTRY_RESOURCE: 1, GATEWAY_RESOURCE: 64}

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


class PlacementError(RuntimeError):
    """The cluster offers no room for this; the message says what to start."""


def stream_actor_name(stream_id: str) -> str:
    return f"stream:{stream_id}"


def create_stream_actor(stream_id: str, meta: dict[str, Any], config: ActorConfig) -> ActorHandle:
    """The stream's actor, created if it does not exist (safe against races)."""
    return _RemoteStream.options(name=stream_actor_name(stream_id), resources={STREAM_RESOURCE: 1},
                                 **_COMMON).remote(stream_id, meta, config)


def create_spare_actor(config: ActorConfig) -> ActorHandle:
    """A stream actor started ahead of time; it serves the stream it `adopt`s."""
    options = {k: v for k, v in _COMMON.items() if k != "get_if_exists"}
    return _RemoteStream.options(name=f"slot:{secrets.token_hex(6)}", resources={STREAM_RESOURCE: 1},
                                 **options).remote(None, None, config)


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
    return _RemoteRegistry.options(name=REGISTRY_NAME, resources={REGISTRY_RESOURCE: REGISTRY_SHARE},
                                   **_COMMON).remote(config)


def find_registry() -> ActorHandle | None:
    try:
        return ray.get_actor(REGISTRY_NAME)
    except ValueError:
        return None


def kill(handle: ActorHandle) -> None:
    """End an actor for good (no restart)."""
    ray.kill(handle, no_restart=True)


def check_cluster_resources() -> None:
    """Raise `PlacementError` unless some node offers `stream` and `registry`
    (otherwise stream actors and the registry would wait for a node forever)."""
    total = ray.cluster_resources()
    missing = [r for r in (STREAM_RESOURCE, REGISTRY_RESOURCE) if total.get(r, 0) < 1]
    if missing:
        raise PlacementError(
            f"no node of this Ray cluster offers the resource(s) {', '.join(missing)}: start the head with "
            f"`ray start --head --resources '{{\"{REGISTRY_RESOURCE}\": 1}}'` and stream nodes with "
            f"`ray start --address HEAD:6379 --resources '{{\"{STREAM_RESOURCE}\": 100}}'` (see ray_cluster.yaml)")


def reserve_gateway_seat(gateway_id: str, timeout: float = 10.0) -> Any:
    """Hold one unit of `gateway` on this process's own node, for as long as
    this process lives (a placement group, owned by this driver: Ray frees it
    when the process exits or dies). Raises `PlacementError` if the node offers
    no `gateway` resource or all of it is taken by other gateways."""
    from ray.util import placement_group, remove_placement_group

    node_id = ray.get_runtime_context().get_node_id()
    offered = next((n.get("Resources", {}).get(GATEWAY_RESOURCE, 0) for n in ray.nodes()
                    if n.get("NodeID") == node_id), 0)
    if offered < 1:
        raise PlacementError(
            f"this node ({node_id[:12]}) offers no `{GATEWAY_RESOURCE}` resource, so it is not a gateway node: "
            f"start Ray here with `ray start --address HEAD:6379 --resources '{{\"{GATEWAY_RESOURCE}\": 1}}'`")
    seat = placement_group([{GATEWAY_RESOURCE: 1}], strategy="STRICT_PACK", name=f"gateway:{gateway_id}",
                           bundle_label_selector=[{"ray.io/node-id": node_id}])
    if not seat.wait(timeout):
        remove_placement_group(seat)
        raise PlacementError(
            f"every `{GATEWAY_RESOURCE}` unit of this node ({offered:g}) is held by other gateways: stop one, "
            f"or start Ray here with more `{GATEWAY_RESOURCE}`")
    return seat


def gateway_seats() -> dict[str, str]:
    """Gateway id -> node id, for every gateway holding a seat in the cluster."""
    from ray.util import placement_group_table

    seats = {}
    for info in placement_group_table().values():
        name = info.get("name", "")
        if name.startswith("gateway:") and info.get("state") == "CREATED":
            seats[name.removeprefix("gateway:")] = next(iter(info["bundles_to_node_id"].values()), "")
    return seats
