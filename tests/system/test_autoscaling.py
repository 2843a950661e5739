"""The autoscaler, shown on one host: a head started with `deploy/autoscale_local.yaml`
(Ray's fake multi-node provider: each node the autoscaler launches is a raylet on this
machine, with its node type's resources), and real stream actors asking for `stream`.

More streams go live than the stream nodes up can hold: the autoscaler adds stream nodes
and every stream goes live. `wrencos status` shows the nodes being launched meanwhile, and
that GCS fault tolerance is off. The streams end: the idle stream nodes are removed after
the configured idle time. Every process the cluster started (the launched nodes too) ends
with it.

The head is started here, never through `ray.cluster_utils.AutoscalingCluster` (its start
runs `ray stop --force`, which would end every other Ray on the machine, the suite's own).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.databases import DatabaseServer
from tests.support.status import wrencos_status
from wrencos.local_cluster import LocalCluster
from wrencos.process_tree import descendants

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "autoscaling-test"
STREAMS = 5  # two `stream` units per node in the config: three stream nodes are needed
IDLE_TIMEOUT_MINUTES = 0.2  # 12 s: how long a stream node stays idle before it is removed
GO_LIVE_PATIENCE_S = 120.0  # generous: a loaded 2-core machine launches nodes slowly


@dataclass
class Autoscaling:
    ray: LocalCluster
    db_uri: str
    stream_ids: list[str] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        """`wrencos status --json`: what an operator's tools see."""
        return dict(json.loads(self.status_text("--json").strip().splitlines()[-1]))

    def status_text(self, *flags: str) -> str:
        """What `wrencos status` prints."""
        return wrencos_status(self.ray.address, NAMESPACE, *flags)

    def alive_stream_nodes(self) -> int:
        return int(self.ray.driver("print(sum(1 for n in ray.nodes() if n['Alive'] and 'stream' in n['Resources']))"))


def own_processes(cluster: LocalCluster) -> list[int]:
    """Every process of this cluster still running: below its head's `ray start`, or naming its
    temp dir on its command line (a node the fake provider launched, if its parent went first)."""
    pids = set(descendants(cluster.nodes["head"].proc.pid)) if "head" in cluster.nodes else set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(cluster.root).encode() in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
        except OSError:
            continue
    return sorted(pids - {os.getpid()})


def program(pid: int) -> str:
    """The name of the program a process runs ("" if it is gone)."""
    try:
        return Path(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()).name
    except OSError:
        return ""


@pytest.fixture(scope="module")
def autoscaling(embedded_db: DatabaseServer) -> Iterator[Autoscaling]:
    ray = LocalCluster(env={"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"})
    config = yaml.safe_load((ROOT / "deploy" / "autoscale_local.yaml").read_text())
    config["provider"]["gcs_address"] = ray.address  # the launched nodes join this head
    config["idle_timeout_minutes"] = IDLE_TIMEOUT_MINUTES
    config_path = ray.root / "autoscale.yaml"
    config_path.write_text(yaml.safe_dump(config))
    head = dict(config["available_node_types"][config["head_node_type"]]["resources"])
    try:
        ray.start_head(head, num_cpus=int(head.pop("CPU")), extra_args=(f"--autoscaling-config={config_path}",))
        yield Autoscaling(ray, embedded_db.uri)
    finally:
        ray.shutdown()
        left = [(pid, program(pid)) for pid in own_processes(ray)]
        for pid, _ in left:  # whatever is left must not outlive the test
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not left, f"processes of the cluster outlived it (the launched nodes' included): {left}"


def test_more_go_lives_than_stream_capacity_add_stream_nodes_and_every_stream_goes_live(
    autoscaling: Autoscaling,
) -> None:
    before = autoscaling.status()
    assert before["autoscaler"] is not None, "the head runs the autoscaler"
    assert before["autoscaler"]["active"] == {"ray.head.default": 1}, before["autoscaler"]
    assert before["gcsFaultTolerance"] == {"on": False, "storage": "memory"}
    assert autoscaling.alive_stream_nodes() == 0

    autoscaling.stream_ids = [uuid.uuid4().hex[:24] for _ in range(STREAMS)]
    # A driver makes every stream's actor at once (as the registry does on go-live) and waits for
    # each to be loaded; it prints, per stream, the seconds from the first go-live to that one live.
    go_live = subprocess.Popen(
        [
            sys.executable,
            "-c",
            GO_LIVE_DRIVER.format(
                address=autoscaling.ray.address,
                namespace=NAMESPACE,
                uri=autoscaling.db_uri,
                db=f"t{uuid.uuid4().hex[:8]}",
                ids=autoscaling.stream_ids,
            ),
        ],
        env=autoscaling.ray.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen_launching: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + GO_LIVE_PATIENCE_S
        while go_live.poll() is None and time.monotonic() < deadline:
            report = autoscaling.status()["autoscaler"]
            if report["launching"].get("stream") or any(p["nodeType"] == "stream" for p in report["pending"]):
                seen_launching.append(report)
        out, err = go_live.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if go_live.poll() is None:
            go_live.kill()
    assert go_live.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    live_after = result["liveAfter"]
    assert sorted(live_after) == sorted(autoscaling.stream_ids), "every stream went live"
    print(f"\nfirst waiting go-live to all live: {max(live_after.values()):.1f} s; per stream: {live_after}")

    nodes = result["nodes"]
    head_id = autoscaling.ray.driver("print(ray.get_runtime_context().get_node_id())")
    assert head_id not in nodes.values(), "no stream actor on the head"
    assert len(set(nodes.values())) == 3, f"5 streams at 2 per node: three stream nodes were added ({nodes})"
    assert seen_launching, "`wrencos status` showed stream nodes being launched while go-lives waited"

    after = autoscaling.status()
    assert after["autoscaler"]["active"].get("stream") == 3, after["autoscaler"]
    assert after["autoscaler"]["launching"] == {} and after["autoscaler"]["pending"] == []
    text = autoscaling.status_text()
    assert "  active     ray.head.default=1, stream=3\n" in text and "  launching  -\n" in text, text
    assert "GCS fault tolerance: off (memory)" in text


def test_when_the_streams_end_idle_stream_nodes_are_removed_after_the_idle_time(autoscaling: Autoscaling) -> None:
    if not autoscaling.stream_ids:
        pytest.skip("needs the streams of the scale-up test")
    assert autoscaling.alive_stream_nodes() == 3
    autoscaling.ray.driver(
        "from actors import stream_lifecycle\n"
        f"for sid in {autoscaling.stream_ids!r}:\n"
        "    stream_lifecycle.kill(stream_lifecycle.find_actor(f'stream:{sid}'))\n"
        "print('ended')",
        namespace=NAMESPACE,
    )
    ended = time.monotonic()
    idle_s = IDLE_TIMEOUT_MINUTES * 60
    deadline = ended + idle_s + 90
    counts = []
    while (n := autoscaling.alive_stream_nodes()) > 0 and time.monotonic() < deadline:
        counts.append((round(time.monotonic() - ended, 1), n))
        time.sleep(1)
    removed_after = time.monotonic() - ended
    print(f"\nstreams ended to every stream node removed: {removed_after:.1f} s (idle time {idle_s:g} s): {counts}")
    assert n == 0, f"idle stream nodes still up {removed_after:.0f} s after the streams ended: {counts}"
    assert removed_after >= idle_s - 2, "not before they were idle for the configured time"
    report = autoscaling.status()["autoscaler"]
    assert "stream" not in report["active"], report
    # The processes of the removed nodes are gone too: only the head's remain.
    raylets = [p for p in own_processes(autoscaling.ray) if program(p) == "raylet"]
    assert len(raylets) == 1, f"one raylet (the head's) left, not {len(raylets)}"


GO_LIVE_DRIVER = """
import asyncio, json, logging, time
import ray
ray.init(address={address!r}, namespace={namespace!r}, logging_level=logging.ERROR, log_to_driver=False)
from actors import stream_lifecycle
from actors.config import ActorConfig
from actors.stream_client import StreamClient
from persistence.database import DatabaseConfig

config = ActorConfig(db=DatabaseConfig(uri={uri!r}, name={db!r}), spare_actors=0)

async def main():
    began = time.monotonic()
    clients = [
        StreamClient(stream_lifecycle.create_stream_actor(sid, {{"streamId": sid, "title": "scale"}}, config), sid)
        for sid in {ids!r}
    ]
    async def live(c):
        await c.ready()
        return c.stream_id, round(time.monotonic() - began, 2)
    live_after = dict(await asyncio.gather(*(live(c) for c in clients)))
    nodes = {{c.stream_id: (await c.info())["nodeId"] for c in clients}}
    print(json.dumps({{"liveAfter": live_after, "nodes": nodes}}))

asyncio.run(main())
"""
