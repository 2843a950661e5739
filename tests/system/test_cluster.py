"""The cluster design on one machine: a Ray cluster of five nodes on this host
(a head, two gateway nodes, two stream nodes, each with the custom resources
`ray_cluster.yaml` gives its kind), three gateway processes attached to the
gateway nodes, and the embedded database.

It checks that actors and gateways land where the resources say, that viewers
spread over three gateways see one order, that the viewer count is the number
of distinct viewers over all gateways, that a gateway killed with SIGKILL
loses its viewers nothing (they reconnect elsewhere and resume), and that a
stream node killed with SIGKILL has its streams come back on the other stream
node from their checkpoints, with their viewers served throughout.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import Api, WsClient, login
from tests.support.databases import DatabaseServer, found
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, Process, start_gateway
from tests.support.status import wrencos_status
from wrencos.local_cluster import LocalCluster

pytestmark = pytest.mark.system

NAMESPACE = "cluster-test"


@dataclass
class Cluster:
    ray: LocalCluster
    gateways: list[tuple[Process, str, str]]  # (process, url, node name)
    node_ids: dict[str, str]  # node name -> Ray node id
    db_uri: str
    log_dir: Path

    def start_gateway(self, node: str) -> tuple[Process, str]:
        return start_gateway(
            self.ray.address,
            self.db_uri,
            NAMESPACE,
            self.log_dir,
            db_name="cluster_test",
            env_overrides={"WRENCOS_RAY_TEMP_DIR": str(self.ray.nodes[node].temp_dir)},
        )

    def run_status(self, *flags: str) -> str:
        """What `wrencos status` prints: what an operator sees."""
        return wrencos_status(self.ray.address, NAMESPACE, *flags)

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.run_status("--json").strip().splitlines()[-1]))

    def actor_nodes(self, stream_ids: list[str]) -> dict[str, str]:
        """Stream id -> the name of the node its actor runs on now."""
        by_id = {v: k for k, v in self.node_ids.items()}
        streams = {s["streamId"]: s for s in self.status()["streams"]}
        return {sid: by_id.get(streams[sid].get("nodeId", ""), "?") for sid in stream_ids}


@pytest.fixture(scope="module")
def cluster(embedded_db: DatabaseServer, log_dir: Path) -> Iterator[Cluster]:
    ray = LocalCluster(node_timeout_s=3.0)
    procs: list[tuple[Process, str, str]] = []
    try:
        ray.start_head({"registry": 1})
        ray.add_node("gw-a", {"gateway": 2})
        ray.add_node("gw-b", {"gateway": 1})
        ray.add_node("stream-1", {"stream": 20})
        ray.add_node("stream-2", {"stream": 20})
        nodes = json.loads(
            ray.driver(
                "import json; print(json.dumps({n['NodeName']: n['NodeID'] for n in ray.nodes() if n['Alive']}))"
            )
        )
        c = Cluster(ray, procs, nodes, embedded_db.uri, log_dir)
        for node in ("gw-a", "gw-a", "gw-b"):
            proc, url = c.start_gateway(node)
            procs.append((proc, url, node))
        yield c
    finally:
        for proc, _, _ in procs:
            proc.kill()
        ray.shutdown()


def ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws"


def chat_of(client: WsClient, sid: str) -> list[tuple[int | None, str]]:
    """(seq, message) of every chat message the client got for the stream, batch frames unpacked."""
    out = []
    for f in client.frames:
        evs = f["events"] if f.get("type") == "batch" and f.get("streamId") == sid else [f]
        out += [(e.get("seq"), e["message"]) for e in evs if e.get("type") == "chat_message"]
    return out


async def live_streams(url: str, n: int, title: str) -> list[str]:
    token = await login(url, ADMIN_EMAIL, ADMIN_PASSWORD)
    ids = []
    async with Api(url, token) as admin:
        for i in range(n):
            sid = (await admin.post("/livestreams", json={"title": f"{title} {i}"})).json()["id"]
            assert (await admin.post(f"/livestreams/{sid}/start")).status_code == 200
            ids.append(sid)
    return ids


async def test_actors_and_gateways_land_where_the_resources_say(cluster: Cluster) -> None:
    ids = await live_streams(cluster.gateways[0][1], 4, "placement")
    import httpx

    status = cluster.status()
    seats = {g["gatewayId"]: g["nodeId"] for g in status["gateways"]}
    for _, url, node in cluster.gateways:
        ready = httpx.get(f"{url}/ready", timeout=5).json()
        assert ready["nodeId"] == cluster.node_ids[node], "the gateway runs on the node it was started on"
        assert seats[ready["gatewayId"]] == cluster.node_ids[node], "...and holds a `gateway` seat there"
    placed = cluster.actor_nodes(ids)
    assert set(placed.values()) <= {"stream-1", "stream-2"}, placed
    assert status["registryNodeId"] == cluster.node_ids["head"]
    spares = json.loads(
        cluster.ray.driver(
            "import asyncio, json\nfrom actors import stream_lifecycle\nfrom actors.stream_client import StreamClient\n"
            "async def nodes():\n"
            "    return [(await StreamClient(stream_lifecycle.find_actor(n), None).info())['nodeId']\n"
            "            for n in stream_lifecycle.spare_names()]\n"
            "print(json.dumps(asyncio.run(nodes())))",
            namespace=NAMESPACE,
        )
    )
    assert spares and set(spares) <= {cluster.node_ids["stream-1"], cluster.node_ids["stream-2"]}
    text = cluster.run_status()
    assert "Gateways (3)" in text and all(sid in text for sid in ids) and "registry=1" in text
    nodes = {n["name"]: n for n in status["nodes"]}
    assert nodes["stream-1"]["resources"] == {"stream": 20} and nodes["gw-a"]["resources"] == {"gateway": 2}

    # No gateway where the node offers no `gateway`, nor more than a node offers.
    for node, says in (("stream-1", "offers no `gateway` resource"), ("gw-b", "held by other gateways")):
        with pytest.raises(RuntimeError) as refused:
            cluster.start_gateway(node)
        assert "exited with 2" in str(refused.value) and says in str(refused.value)


async def test_viewers_on_three_gateways_see_one_order_and_are_counted_once(cluster: Cluster) -> None:
    urls = [url for _, url, _ in cluster.gateways]
    sid = (await live_streams(urls[0], 1, "order"))[0]
    clients = [WsClient(ws(url)) for url in urls for _ in range(3)]
    for c in clients:
        await c.__aenter__()
    try:
        # On each gateway: an opted-in viewer, an old app, and a talker (opted in). "twice" is one
        # person on two gateways at once: one viewer.
        for i, c in enumerate(clients):
            kind = i % 3
            session = f"g{i // 3}-{['new', 'old', 'talk'][kind]}"
            await c.send(
                {"type": "register", "sessionId": session, "streamId": sid, **({} if kind == 1 else {"protocol": 2})}
            )
        async with WsClient(ws(urls[0])) as twice_a, WsClient(ws(urls[2])) as twice_b:
            for t in (twice_a, twice_b):
                await t.send({"type": "register", "sessionId": "twice", "streamId": sid})
            await clients[1].wait_for(lambda f: f.get("type") == "stream_update" and f["viewerCount"] == 10, timeout=20)
        talkers = clients[2::3]
        for t in talkers:
            await t.wait_type("chat_history")

        async def talk(g: int, t: WsClient) -> None:
            for k in range(10):
                await t.send({"type": "chat_message", "message": f"g{g} says {k}", "clientMsgId": f"{g}-{k}"})
                await asyncio.sleep(0.01)
            await t.wait_type("ack", clientMsgId=f"{g}-9", timeout=20)

        await asyncio.gather(*(talk(g, t) for g, t in enumerate(talkers)))
        for c in clients:
            await c.wait_for(lambda f: len(chat_of(c, sid)) >= 30, timeout=20)  # noqa: B023 - awaited within the iteration
        orders = [[m for _, m in chat_of(c, sid)] for c in clients]
        assert all(len(o) == 30 for o in orders)
        assert all(o == orders[0] for o in orders), "every viewer on every gateway sees one order"
        for g in range(3):  # each talker's own messages in the order sent
            assert [m for m in orders[0] if m.startswith(f"g{g} ")] == [f"g{g} says {k}" for k in range(10)]
        seqs = [found(s) for s, _ in chat_of(clients[0], sid)]  # every chat event has its seq
        assert seqs == sorted(seqs) and len(set(seqs)) == 30
    finally:
        for c in clients:
            await c.close()


async def test_a_gateway_killed_loses_its_viewers_nothing(cluster: Cluster) -> None:
    """SIGKILL a gateway: an opted-in app resumes on another one with no gap, an old app gets the
    state and chat history afresh, the stream carries on, and the dead gateway's viewers leave the
    count within its lease."""
    proc, doomed_url, _ = cluster.gateways[2]
    other_url = cluster.gateways[0][1]
    sid = (await live_streams(other_url, 1, "gateway-kill"))[0]
    async with WsClient(ws(other_url)) as talker, WsClient(ws(other_url)) as watcher:
        await talker.send({"type": "register", "sessionId": "talker", "streamId": sid, "protocol": 2})
        await watcher.send({"type": "register", "sessionId": "watcher", "streamId": sid})
        new, old, gone = WsClient(ws(doomed_url)), WsClient(ws(doomed_url)), WsClient(ws(doomed_url))
        for c, session, extra in ((new, "new", {"protocol": 2}), (old, "old", {}), (gone, "gone", {})):
            await c.__aenter__()
            await c.send({"type": "register", "sessionId": session, "streamId": sid, **extra})
            await c.wait_type("chat_history")
        await watcher.wait_for(lambda f: f.get("type") == "stream_update" and f["viewerCount"] == 5, timeout=20)
        for k in range(3):
            await talker.send({"type": "chat_message", "message": f"before {k}", "clientMsgId": f"b{k}"})
        await talker.wait_type("ack", clientMsgId="b2")
        await new.wait_for(lambda f: len(chat_of(new, sid)) == 3, timeout=15)
        last_seq = max(e["seq"] for f in new.frames if f.get("type") == "batch" for e in f["events"])
        epoch = next(e["epoch"] for f in new.frames if f.get("type") == "batch" for e in f["events"])

        proc.kill()
        for c in (new, old, gone):
            await c.close()
        for k in range(3):  # the stream carries on while they reconnect
            await talker.send({"type": "chat_message", "message": f"meanwhile {k}", "clientMsgId": f"m{k}"})
        await talker.wait_type("ack", clientMsgId="m2", timeout=20)

        async with WsClient(ws(other_url)) as new2, WsClient(ws(other_url)) as old2:
            await new2.send(
                {
                    "type": "register",
                    "sessionId": "new",
                    "streamId": sid,
                    "protocol": 2,
                    "resume": {"seq": last_seq, "epoch": epoch},
                }
            )
            await new2.wait_type("resumed", timeout=20)
            await new2.wait_for(lambda f: len(chat_of(new2, sid)) == 3, timeout=15)
            assert [m for _, m in chat_of(new2, sid)] == [f"meanwhile {k}" for k in range(3)]
            got = [e["seq"] for f in new2.frames if f.get("type") == "batch" for e in f["events"]]
            assert got == list(range(last_seq + 1, got[-1] + 1)), "no gap, no repeat"
            await old2.send({"type": "register", "sessionId": "old", "streamId": sid})
            history = await old2.wait_type("chat_history", timeout=20)
            assert [m["message"] for m in history["messages"]][-6:] == (
                [f"before {k}" for k in range(3)] + [f"meanwhile {k}" for k in range(3)]
            )
            # "gone" never came back: it leaves the count when the dead gateway's lease runs out.
            await watcher.wait_for(lambda f: f.get("type") == "stream_update" and f["viewerCount"] == 4, timeout=20)

    # Its seat on gw-b went with it: a gateway started there again (what systemd's Restart= does) runs.
    proc2, url2 = cluster.start_gateway("gw-b")
    cluster.gateways[2] = (proc2, url2, "gw-b")


async def test_a_stream_node_killed_has_its_streams_back_on_the_other(cluster: Cluster) -> None:
    url = cluster.gateways[0][1]
    ids = await live_streams(url, 4, "node-kill")
    placed = cluster.actor_nodes(ids)
    victim = max(("stream-1", "stream-2"), key=lambda n: list(placed.values()).count(n))
    survivor = "stream-2" if victim == "stream-1" else "stream-1"
    sid = next(s for s, n in placed.items() if n == victim)
    async with WsClient(ws(url)) as talker, WsClient(ws(url)) as viewer:
        await talker.send({"type": "register", "sessionId": "t", "streamId": sid, "protocol": 2})
        await viewer.send({"type": "register", "sessionId": "v", "streamId": sid, "protocol": 2})
        await viewer.wait_type("chat_history")
        for k in range(3):
            await talker.send({"type": "chat_message", "message": f"stored {k}", "clientMsgId": f"s{k}"})
        await talker.wait_type("ack", clientMsgId="s2")

        cluster.ray.nodes[victim].kill()
        await talker.send({"type": "chat_message", "message": "after the node died", "clientMsgId": "a"})
        await talker.wait_type("ack", clientMsgId="a", timeout=90)
        await viewer.wait_for(lambda f: any(m == "after the node died" for _, m in chat_of(viewer, sid)), timeout=30)
        seqs = [found(s) for s, _ in chat_of(viewer, sid)]
        assert [m for _, m in chat_of(viewer, sid)] == [f"stored {k}" for k in range(3)] + ["after the node died"]
        assert seqs == sorted(seqs), "one order through the move"

    moved = cluster.actor_nodes(ids)
    assert set(moved.values()) == {survivor}, moved
    async with WsClient(ws(url)) as late:  # a newcomer gets the stored chat from the checkpoint
        await late.send({"type": "register", "sessionId": f"late-{uuid.uuid4().hex[:4]}", "streamId": sid})
        history = await late.wait_type("chat_history", timeout=20)
        assert [m["message"] for m in history["messages"]] == (
            [f"stored {k}" for k in range(3)] + ["after the node died"]
        )
