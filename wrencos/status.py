"""`wrencos status`: what runs where in a cluster, for operators.

Reads only: the nodes Ray knows (alive or dead, with the custom resources
that decide placement), the gateways holding a seat and their nodes, every
live stream with the node, process and position of its actor, what the
autoscaler last reported (nodes by type: up, launched but not yet joined,
requested) and whether the head's control store (GCS) survives the head
(fault tolerance: its state kept in an external Redis).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import ray
from ray._common.usage.usage_constants import EXTRA_USAGE_TAG_PREFIX, USAGE_STATS_NAMESPACE
from ray._private.ray_constants import DEBUG_AUTOSCALING_STATUS
from ray.experimental.internal_kv import _internal_kv_get

from actors import placement
from actors.call_policy import ActorCallError, LoggedCalls
from actors.registry_client import RegistryClient
from actors.stream_client import StreamClient

PLACEMENT_RESOURCES = (placement.REGISTRY_RESOURCE, placement.GATEWAY_RESOURCE, placement.STREAM_RESOURCE)
# Where the head records the GCS's storage ("memory", "redis" or "rocksdb") when it starts: one of
# Ray's usage tags, written to the GCS's key-value store whether usage stats are sent or not.
GCS_STORAGE_KEY = f"{EXTRA_USAGE_TAG_PREFIX}gcs_storage".encode()
READONLY_NODE_TYPE_PREFIX = "node_"


def cluster_status(timeout: float = 10.0) -> dict[str, Any]:
    """Nodes, gateways and live streams of the cluster `ray.init` connected to.
    Blocks (each actor call within `timeout`): for the command line."""
    nodes = [
        {
            "name": n.get("NodeName", ""),
            "nodeId": n["NodeID"],
            "alive": bool(n["Alive"]),
            "resources": {r: n["Resources"][r] for r in PLACEMENT_RESOURCES if r in n.get("Resources", {})},
        }
        for n in ray.nodes()
    ]
    gateways = [{"gatewayId": g, "nodeId": node} for g, node in sorted(placement.gateway_seats().items())]
    registry = RegistryClient.find(LoggedCalls())
    registry_node, streams = asyncio.run(_streams(registry, timeout)) if registry is not None else (None, [])
    return {
        "nodes": nodes,
        "registryNodeId": registry_node,
        "gateways": gateways,
        "streams": streams,
        "autoscaler": autoscaler_status(),
        "gcsFaultTolerance": gcs_fault_tolerance(),
    }


def autoscaler_status() -> dict[str, Any] | None:
    """What the autoscaler (Ray's monitor on the head) last reported, as `ray status` reads it:
    nodes up by type (`active`), launched but not yet joined (`pending`: address, type, state),
    requested from the provider and not yet launched (`launching`: type -> count), failed, and how
    long ago the report was made. None when the cluster runs no autoscaler (a cluster started by
    hand, `make run`)."""
    raw = _internal_kv_get(DEBUG_AUTOSCALING_STATUS)
    if not raw:
        return None
    status = json.loads(raw)
    report = status.get("autoscaler_report")
    # A head started without `--autoscaling-config` runs the monitor over a read-only provider that
    # names each node's type after the node (`node_<id>`): nothing is ever launched.
    if report is None or all(kind.startswith(READONLY_NODE_TYPE_PREFIX) for kind in report.get("active_nodes") or {}):
        return None
    return {
        "reportedSecondsAgo": round(max(0.0, time.time() - float(status.get("time", time.time()))), 1),
        "active": dict(report.get("active_nodes") or {}),
        "pending": [{"address": ip, "nodeType": kind, "state": state} for ip, kind, state in report["pending_nodes"]],
        "launching": {kind: n for kind, n in (report.get("pending_launches") or {}).items() if n},
        "failed": [{"address": ip, "nodeType": kind} for ip, kind in report.get("failed_nodes") or []],
    }


def gcs_fault_tolerance() -> dict[str, Any]:
    """Whether the cluster survives losing its head: on when the GCS keeps its state outside the
    head's memory (Redis, as README "Operating a cluster" sets up; or RocksDB on a disk that
    outlives the head). `storage` is what the head recorded when it started ("unknown" if not)."""
    raw = _internal_kv_get(GCS_STORAGE_KEY, namespace=USAGE_STATS_NAMESPACE.encode())
    storage = raw.decode() if raw else "unknown"
    return {"on": storage in ("redis", "rocksdb"), "storage": storage}


async def _streams(registry: RegistryClient, timeout: float) -> tuple[str, list[dict[str, Any]]]:
    """The registry's node, and every live stream with where its actor runs (as its live set names it)."""
    registry_node = await registry.node_id(timeout_s=timeout)
    live = await registry.live(timeout_s=timeout)
    streams: list[dict[str, Any]] = []
    for stream_id, announcement in sorted(live.live.items()):
        entry: dict[str, Any] = {"streamId": stream_id, "title": announcement.get("title", "")}
        handle = live.actors.get(stream_id)
        actor = StreamClient(handle, stream_id, registry.observer) if handle is not None else None
        try:
            info = await actor.info(timeout_s=timeout) if actor is not None else None
        except ActorCallError as e:
            info, entry["error"] = None, type(e).__name__
        if info is not None:
            entry.update(
                nodeId=info["nodeId"],
                pid=info["pid"],
                seq=info["seq"],
                healthy=info["healthy"],
                gateways=len(info["gateways"]),
            )
        streams.append(entry)
    return registry_node, streams


def print_status(status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(status))
        return
    names = {n["nodeId"]: n["name"] or n["nodeId"][:12] for n in status["nodes"]}
    out = sys.stdout
    out.write("Nodes\n")
    for n in status["nodes"]:
        res = ", ".join(f"{k}={v:g}" for k, v in n["resources"].items()) or "-"
        on = sum(1 for s in status["streams"] if s.get("nodeId") == n["nodeId"])
        gws = sum(1 for g in status["gateways"] if g["nodeId"] == n["nodeId"])
        reg = " registry" if n["nodeId"] == status["registryNodeId"] else ""
        out.write(
            f"  {names[n['nodeId']]:<16} {'alive' if n['alive'] else 'DEAD ':<6} {res:<32} "
            f"{gws} gateway(s), {on} stream(s){reg}\n"
        )
    out.write(f"Gateways ({len(status['gateways'])})\n")
    for g in status["gateways"]:
        out.write(f"  {g['gatewayId']:<14} on {names.get(g['nodeId'], g['nodeId'][:12])}\n")
    out.write(f"Live streams ({len(status['streams'])})\n")
    for s in status["streams"]:
        where = names.get(s.get("nodeId", ""), "?")
        state = s.get("error") or ("ok" if s.get("healthy") else "UNHEALTHY")
        out.write(
            f"  {s['streamId']:<26} on {where:<16} pid {s.get('pid', '-')!s:<8} seq {s.get('seq', '-')!s:<8} "
            f"{s.get('gateways', 0)} gateway(s) following  {state}  {s['title'][:40]}\n"
        )
    _print_autoscaler(status["autoscaler"])
    ft = status["gcsFaultTolerance"]
    out.write(
        f"GCS fault tolerance: on ({ft['storage']}): the cluster survives a restart of the head\n"
        if ft["on"]
        else f"GCS fault tolerance: off ({ft['storage']}): losing the head stops the cluster\n"
    )


def _print_autoscaler(report: dict[str, Any] | None) -> None:
    out = sys.stdout
    if report is None:
        out.write("Autoscaler: none (nodes are started by hand)\n")
        return

    def counts(by_type: dict[str, int]) -> str:
        return ", ".join(f"{kind}={n}" for kind, n in sorted(by_type.items())) or "-"

    out.write(f"Autoscaler (reported {report['reportedSecondsAgo']:g} s ago)\n")
    out.write(f"  active     {counts(report['active'])}\n")
    out.write(f"  launching  {counts(report['launching'])}\n")
    pending = ", ".join(f"{p['nodeType']} at {p['address']} ({p['state']})" for p in report["pending"]) or "-"
    out.write(f"  pending    {pending}\n")
    if report["failed"]:
        out.write(f"  failed     {', '.join(f['nodeType'] + ' at ' + f['address'] for f in report['failed'])}\n")
