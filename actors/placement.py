"""Where actors run and what they are called: names, Ray custom resources, gateway seats.

Actors are named in one namespace so any process of the cluster finds them:
`registry` for the directory, `stream:<id>` for a stream actor created for its
stream, `slot:<hex>` for one started ahead of time (a spare) that adopted a
stream. Gateways do not look stream actors up by name: the registry's live set
hands them each stream's actor (see `actors.registry_client`).

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
`stream`; each recovers from its checkpoint. This module imports no actor
class: creating actors is `stream_lifecycle` and `registry_lifecycle`.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util import placement_group, placement_group_table, remove_placement_group

REGISTRY_NAME = "registry"
SPARE_PREFIX = "slot:"
STREAM_RESOURCE = "stream"
REGISTRY_RESOURCE = "registry"
GATEWAY_RESOURCE = "gateway"
# The registry asks for a sliver of `registry`: the resource says *where* registries run (the head,
# which offers 1), and one registry per Ray namespace (tests run several) all fit there.
REGISTRY_SHARE = 0.01
# What `wrencos run` and the tests give a single-node cluster: room for everything.
SINGLE_NODE_RESOURCES: dict[str, float] = {STREAM_RESOURCE: 10_000, REGISTRY_RESOURCE: 1, GATEWAY_RESOURCE: 64}

# Every actor is detached (it outlives the process that created it) and restarted by Ray whenever
# its process dies (`max_restarts=-1`). Ray does not retry calls (`max_task_retries=0`): the clients
# do, by one policy (`actors.call_policy`), which keeps retries visible and ordered. Actors wait on
# I/O, not the CPU: they reserve no CPU so that hundreds fit a node.
ACTOR_OPTIONS: dict[str, Any] = {
    "lifetime": "detached",
    "max_restarts": -1,
    "max_task_retries": 0,
    "num_cpus": 0,
}


class PlacementError(RuntimeError):
    """The cluster offers no room for this; the message says what to start."""


def stream_actor_name(stream_id: str) -> str:
    return f"stream:{stream_id}"


def check_cluster_resources() -> None:
    """Raise `PlacementError` unless some node offers `stream` and `registry`
    (otherwise stream actors and the registry would wait for a node forever)."""
    total = ray.cluster_resources()
    missing = [r for r in (STREAM_RESOURCE, REGISTRY_RESOURCE) if total.get(r, 0) < 1]
    if missing:
        raise PlacementError(
            f"no node of this Ray cluster offers the resource(s) {', '.join(missing)}: start the head with "
            f"`ray start --head --resources '{{\"{REGISTRY_RESOURCE}\": 1}}'` and stream nodes with "
            f"`ray start --address HEAD:6379 --resources '{{\"{STREAM_RESOURCE}\": 100}}'` (see ray_cluster.yaml)"
        )


def reserve_gateway_seat(gateway_id: str, timeout: float = 10.0) -> Any:
    """Hold one unit of `gateway` on this process's own node, for as long as
    this process lives (a placement group, owned by this driver: Ray frees it
    when the process exits or dies). Raises `PlacementError` if the node offers
    no `gateway` resource or all of it is taken by other gateways."""
    node_id = ray.get_runtime_context().get_node_id()
    offered = next(
        (n.get("Resources", {}).get(GATEWAY_RESOURCE, 0) for n in ray.nodes() if n.get("NodeID") == node_id), 0
    )
    if offered < 1:
        raise PlacementError(
            f"this node ({node_id[:12]}) offers no `{GATEWAY_RESOURCE}` resource, so it is not a gateway node: "
            f"start Ray here with `ray start --address HEAD:6379 --resources '{{\"{GATEWAY_RESOURCE}\": 1}}'`"
        )
    seat = placement_group(
        [{GATEWAY_RESOURCE: 1}],
        strategy="STRICT_PACK",
        name=f"gateway:{gateway_id}",
        bundle_label_selector=[{"ray.io/node-id": node_id}],
    )
    if not seat.wait(timeout):
        remove_placement_group(seat)
        raise PlacementError(
            f"every `{GATEWAY_RESOURCE}` unit of this node ({offered:g}) is held by other gateways: stop one, "
            f"or start Ray here with more `{GATEWAY_RESOURCE}`"
        )
    return seat


def gateway_seats() -> dict[str, str]:
    """Gateway id -> node id, for every gateway holding a seat in the cluster."""
    seats = {}
    for info in placement_group_table().values():
        name = info.get("name", "")
        if name.startswith("gateway:") and info.get("state") == "CREATED":
            seats[name.removeprefix("gateway:")] = next(iter(info["bundles_to_node_id"].values()), "")
    return seats
