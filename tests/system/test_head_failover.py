"""The head dies and a new one takes over: Ray's GCS fault tolerance, with the control
store's state in an external Redis (Debian's `redis-server` here; a managed Redis in
production, see README "Operating a cluster").

One host, four Ray nodes: a head (the registry), a gateway node with a gateway process on
it, and a stream node with the stream actors. A stream is live, with viewers and a talker
on the gateway. Every process of the head node is killed with SIGKILL (its GCS, raylet,
dashboard, autoscaler monitor and the registry's worker), and a new head is started at the
same address some seconds later. Meanwhile an admin asks for a go-live.

What must hold: the viewers stay connected; chat pauses at most `CHAT_PAUSE_MAX_S`, then
flows again, and every acknowledged message reaches the viewers; the registry comes back
with every live stream; the stream's actor is the same process, not reloaded; the admin's
go-live is refused at once (503 with Retry-After: the gateway pings the registry first), not
left waiting for the new head.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from persistence.embedded import free_port
from tests.support.clients import Api, WsClient, login
from tests.support.databases import DatabaseServer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, Process, base_env, start_gateway
from wrencos.local_cluster import LocalCluster

pytestmark = pytest.mark.system

NAMESPACE = "head-failover-test"
OUTAGE_S = 5.0  # how long the cluster runs without a head before the new one starts
CHAT_PAUSE_MAX_S = 10.0  # the longest chat may go unacknowledged across the outage (measured: under 1 s)
RECOVERY_S = 90.0  # from starting the new head to the registry answering the gateway again
GO_LIVE_ANSWER_S = 15.0  # the gateway's registry check is 3 s; slack for a busy CI machine (the REST bound is 20 s)
# Ray's nodes and drivers wait this long for a GCS that stopped answering before they exit (Ray's
# default is 60 s): it bounds how long a head may stay down.
GCS_RECONNECT_TIMEOUT_S = 60


@dataclass
class FailoverCluster:
    ray: LocalCluster
    redis: subprocess.Popen[bytes]
    gateway: Process
    url: str

    def stream_info(self, stream_id: str) -> dict[str, Any] | None:
        """The stream's actor's `info()`, found through the registry's live set (None if the
        registry does not list the stream)."""
        code = (
            "import asyncio, json\n"
            "from actors.call_policy import LoggedCalls\n"
            "from actors.registry_client import RegistryClient\n"
            "from actors.stream_client import StreamClient\n"
            "async def main():\n"
            "    registry = RegistryClient.find(LoggedCalls())\n"
            "    live = await registry.live(timeout_s=60)\n"
            f"    handle = live.actors.get({stream_id!r})\n"
            "    return None if handle is None else await StreamClient(handle, None).info(timeout_s=30)\n"
            "print(json.dumps(asyncio.run(main())))"
        )
        info = json.loads(self.ray.driver(code, namespace=NAMESPACE))
        return dict(info) if info is not None else None

    def status(self) -> dict[str, Any]:
        r = subprocess.run(
            [sys.executable, "-m", "wrencos", "status", "--address", self.ray.address, "--json"],
            env={**base_env(), "WRENCOS_NAMESPACE": NAMESPACE},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        return dict(json.loads(r.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def failover(embedded_db: DatabaseServer, log_dir: Path) -> Iterator[FailoverCluster]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on the PATH (Debian: apt-get install redis-server)")
    root = Path(log_dir) / "redis"
    root.mkdir()
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=root,
        stdout=open(root / "redis.log", "wb"),  # noqa: SIM115 - open while redis runs
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ray = LocalCluster(
        node_timeout_s=3.0,
        env={
            "RAY_REDIS_ADDRESS": f"127.0.0.1:{port}",
            "RAY_external_storage_namespace": f"wrencos-{uuid.uuid4().hex[:8]}",
            "RAY_gcs_rpc_server_reconnect_timeout_s": str(GCS_RECONNECT_TIMEOUT_S),
        },
    )
    gateway = None
    try:
        ray.start_head({"registry": 1})
        ray.add_node("gw-a", {"gateway": 1})
        ray.add_node("stream-1", {"stream": 20})
        gateway, url = start_gateway(
            ray.address,
            embedded_db.uri,
            NAMESPACE,
            log_dir,
            db_name="failover_test",
            env_overrides={"WRENCOS_RAY_TEMP_DIR": str(ray.nodes["gw-a"].temp_dir)},
        )
        yield FailoverCluster(ray, redis, gateway, url)
    finally:
        if gateway is not None:
            gateway.kill()
        ray.shutdown()
        redis.kill()
        redis.wait()


def ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws"


def chat_texts(client: WsClient) -> list[str]:
    out = []
    for f in client.frames:
        evs = f["events"] if f.get("type") == "batch" else [f]
        out += [e["message"] for e in evs if e.get("type") == "chat_message"]
    return out


async def test_the_head_killed_and_replaced_loses_no_viewer_no_chat_and_no_stream(failover: FailoverCluster) -> None:
    url = failover.url
    token = await login(url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(url, token) as admin:
        sid = (await admin.post("/livestreams", json={"title": "failover"})).json()["id"]
        assert (await admin.post(f"/livestreams/{sid}/start")).status_code == 200
        later = (await admin.post("/livestreams", json={"title": "goes live during the outage"})).json()["id"]
    assert failover.status()["gcsFaultTolerance"] == {"on": True, "storage": "redis"}
    before = failover.stream_info(sid)
    assert before is not None and before["loaded"]

    async with WsClient(ws(url)) as talker, WsClient(ws(url)) as viewer, WsClient(ws(url)) as old_app:
        await talker.send({"type": "register", "sessionId": "talker", "streamId": sid, "protocol": 2})
        await viewer.send({"type": "register", "sessionId": "viewer", "streamId": sid, "protocol": 2})
        await old_app.send({"type": "register", "sessionId": "old", "streamId": sid})
        for c in (talker, viewer, old_app):
            await c.wait_type("chat_history", timeout=20)

        sent: dict[str, float] = {}
        stop = asyncio.Event()

        async def talk() -> None:
            k = 0
            while not stop.is_set():
                sent[f"m{k}"] = time.monotonic()
                await talker.send({"type": "chat_message", "message": f"message {k}", "clientMsgId": f"m{k}"})
                k += 1
                await asyncio.sleep(0.25)

        talking = asyncio.create_task(talk())
        await asyncio.sleep(2)

        killed = time.monotonic()
        await asyncio.to_thread(failover.ray.nodes["head"].kill)

        async def go_live_during_outage() -> tuple[int, float, dict[str, str]]:
            began = time.monotonic()
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
                r = await c.post(f"/livestreams/{later}/start", timeout=GO_LIVE_ANSWER_S)
            return r.status_code, time.monotonic() - began, dict(r.headers)

        go_live = asyncio.create_task(go_live_during_outage())
        async with httpx.AsyncClient(base_url=url) as http:
            while time.monotonic() - killed < OUTAGE_S:  # the gateway says what it lacks, and serves
                r = await http.get("/ready", timeout=10)
                assert r.status_code == 200 and r.json()["registry"] == "unavailable", r.text
                await asyncio.sleep(1)
            restarted = time.monotonic()
            await asyncio.to_thread(failover.ray.start_head, {"registry": 1}, 1, (), "head-2")
            head_up = time.monotonic() - restarted
            while (await http.get("/ready", timeout=10)).json()["registry"] != "ok":
                assert time.monotonic() - restarted < RECOVERY_S, "the registry came back at the gateway"
                await asyncio.sleep(0.5)
            registry_back = time.monotonic() - restarted
        await asyncio.sleep(3)  # chat goes on with the new head
        stop.set()
        await talking
        last = max(sent, key=lambda m: sent[m])
        await talker.wait_type("ack", clientMsgId=last, timeout=60)
        for app in (viewer, old_app):
            await app.wait_for(lambda f: f"message {len(sent) - 1}" in chat_texts(app), timeout=30)  # noqa: B023 - awaited within the iteration
        go_live_status, go_live_s, go_live_headers = await asyncio.wait_for(go_live, GO_LIVE_ANSWER_S + 10)
        still_connected = [app.closed_code is None for app in (talker, viewer, old_app)]

    acked = {
        f["clientMsgId"]: t for f, t in zip(talker.frames, talker.arrived_at, strict=True) if f.get("type") == "ack"
    }
    ack_times = sorted(acked.values())
    pause = max(b - a for a, b in itertools.pairwise(ack_times))
    after = failover.stream_info(sid)
    status = failover.status()
    names = {n["nodeId"]: n["name"] for n in status["nodes"]}
    print(
        f"\nhead killed; new head started after {OUTAGE_S:g} s, up in {head_up:.1f} s; the gateway saw the registry "
        f"again {registry_back:.1f} s after the restart ({registry_back + OUTAGE_S:.1f} s after the kill); "
        f"longest gap between chat acks {pause:.2f} s ({len(acked)}/{len(sent)} acknowledged); "
        f"admin go-live asked during the outage: {go_live_status} after {go_live_s:.1f} s"
    )
    assert set(acked) == set(sent), "every chat message sent across the outage was acknowledged"
    assert pause <= CHAT_PAUSE_MAX_S, f"chat paused {pause:.1f} s"
    assert all(still_connected), "the talker and the viewers stayed connected throughout"
    for app in (viewer, old_app):
        texts = chat_texts(app)
        assert all(f"message {m[1:]}" in texts for m in acked), "every acknowledged message reached the viewers"
    # The same actor process serves the stream, not reloaded: same pid and incarnation, loaded once.
    assert after is not None, "the new registry lists the live stream"
    assert (after["pid"], after["incarnation"], after["loadSeconds"]) == (
        before["pid"],
        before["incarnation"],
        before["loadSeconds"],
    )
    assert after["seq"] > before["seq"]
    live = {s["streamId"] for s in status["streams"]}
    assert sid in live, "the registry came back with every live stream"
    assert names[status["registryNodeId"]] == "head-2", "the registry runs on the new head"
    assert not next(n for n in status["nodes"] if n["name"] == "head")["alive"]
    assert status["gcsFaultTolerance"]["on"]
    # The go-live asked while no head ran: refused at once, saying to try again, not left hanging.
    assert go_live_status == 503 and "retry-after" in go_live_headers, (go_live_status, go_live_headers)
    assert go_live_s < GO_LIVE_ANSWER_S, go_live_s
