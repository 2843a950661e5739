"""`wrencos status`: what runs where in a cluster, for operators.

Reads only: the nodes Ray knows (alive or dead, with the custom resources
that decide placement), the gateways holding a seat and their nodes, and
every live stream with the node, process and position of its actor.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import ray

from actors import placement
from actors.call_policy import ActorCallError, LoggedCalls
from actors.registry_client import RegistryClient
from actors.stream_client import StreamClient

PLACEMENT_RESOURCES = (placement.REGISTRY_RESOURCE, placement.GATEWAY_RESOURCE, placement.STREAM_RESOURCE)


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
    return {"nodes": nodes, "registryNodeId": registry_node, "gateways": gateways, "streams": streams}


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
