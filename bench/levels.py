"""The `levels` scenario: fan-out in levels, measured.

One stream actor, two gateways (`wrencos gateway`, on a Ray cluster started
the way `ray start` starts one), opted-in viewers spread over both, 50 chat
messages a second. Once every viewer watches, the actor's own CPU time and
sequence number are read twice, 10 s apart: CPU per published event, at 100
viewers and at 10,000. Fan-out in levels means the actor answers one poll per
gateway per batch whatever the number of viewers, so the two figures should
be about the same; the gateways' work grows with viewers instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.run import ADMIN_EMAIL, ADMIN_PASSWORD, LOAD_TEST_LIMITS, options, wait_ready
from persistence.embedded import EmbeddedMongo, free_port
from wrencos.local_cluster import LocalCluster

JWT_SECRET = "bench-secret-" + "x" * 40
GATEWAYS = 2
WINDOW_S = 10.0


def start_gateway(cluster: LocalCluster, uri: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MONGODB_", "WRENCOS_"))}
    env.update(
        {
            "MONGODB_URI": uri,
            "JWT_SECRET": JWT_SECRET,
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "warning",
            "LOG_FORMAT": "json",
            **LOAD_TEST_LIMITS,
        }
    )
    args = [sys.executable, "-m", "wrencos", "gateway", "--address", cluster.address]
    with open(log, "wb") as out:  # the gateway writes to its own copy of the file; ours closes here
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, log)
    return proc, url


def actor_sample(cluster: LocalCluster, stream_id: str) -> dict[str, Any]:
    import json

    out = cluster.driver(
        "import asyncio, json\nfrom actors.registry_client import RegistryClient\n"
        "async def info(sid):\n    client = await RegistryClient.find().stream_client(sid)\n"
        "    return await client.info()\n"
        f"i = asyncio.run(info({stream_id!r}))\n"
        "print(json.dumps({'cpu': i['cpuSeconds'], 'seq': i['seq'], 'gateways': len(i['gateways']),\n"
        "    'polls': i['pollsAnswered'], 'delivered': i['eventsDelivered']}))"
    )
    return dict(json.loads(out))  # driver() raises if the actor cannot be asked


def run_levels(viewers: int, work: Path) -> dict[str, float]:
    """Actor CPU per event with `viewers` opted-in viewers over two gateways."""
    cluster = LocalCluster()
    db = EmbeddedMongo(Path(tempfile.mkdtemp(prefix="wrencos-levels-db-")))
    gateways: list[subprocess.Popen[bytes]] = []
    try:
        db.__enter__()
        cluster.start_head({"registry": 1, "stream": 10, "gateway": GATEWAYS}, num_cpus=2)
        urls = []
        for i in range(GATEWAYS):
            proc, url = start_gateway(cluster, db.uri, work / f"levels-{viewers}-gw{i}.log")
            gateways.append(proc)
            urls.append(url)
        token = httpx.post(
            f"{urls[0]}/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        sid = httpx.post(f"{urls[0]}/livestreams", json={"title": "levels"}, headers=auth, timeout=30).json()["id"]
        httpx.post(f"{urls[0]}/livestreams/{sid}/start", headers=auth, timeout=60).raise_for_status()
        ramp = 2500.0
        settle = viewers / ramp + 6.0
        cmd = [sys.executable, "-m", "wrencos", "loadtest", "run", "--no-live", "--keep-streams"]
        cmd += [arg for url in urls for arg in ("-g", url)]
        cmd += ["--admin-email", ADMIN_EMAIL, "--admin-password", ADMIN_PASSWORD, "--stream-id", sid]
        cmd += options(viewers=viewers, ramp=ramp, protocol="v2", chat_rate=50, chat_start=settle - 2)
        cmd += options(duration=settle + WINDOW_S + 4, workers=2, json=work / f"levels-{viewers}.json", out_dir=work)
        tester = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(settle)
        first = actor_sample(cluster, sid)
        time.sleep(WINDOW_S)
        second = actor_sample(cluster, sid)
        tester.wait(300)
        events = max(1, second["seq"] - first["seq"])
        # Counted by the actor in the window: events it handed out in poll answers (to any gateway),
        # and poll answers per gateway.
        delivered = sum(second["delivered"].values()) - sum(first["delivered"].values())
        polls = [n - first["polls"].get(gw, 0) for gw, n in second["polls"].items()]
        return {
            "cpu_us_per_event": 1e6 * (second["cpu"] - first["cpu"]) / events,
            "events_per_s": events / WINDOW_S,
            "gateways_served": float(second["gateways"]),
            "deliveries_per_event": delivered / events,
            "polls_per_gateway_s": sum(polls) / max(1, len(polls)) / WINDOW_S,
        }
    finally:
        for proc in gateways:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in gateways:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        cluster.shutdown()
        db.__exit__(None, None, None)


def levels(run: int, work: Path, figures: dict[str, Any]) -> None:
    """The `make bench` scenario: 100 then 10,000 viewers, the same chat rate."""
    small = run_levels(100, work)
    large = run_levels(10_000, work)
    figures["actor CPU/event, 100 viewers"].values.append(small["cpu_us_per_event"])
    figures["actor CPU/event, 10,000 viewers"].values.append(large["cpu_us_per_event"])
    figures["actor CPU/event ratio 10,000 : 100"].values.append(large["cpu_us_per_event"] / small["cpu_us_per_event"])
    figures["deliveries per event (actor's poll answers)"].values.append(large["deliveries_per_event"])
    figures["poll answers/s per gateway, 10,000 viewers"].values.append(large["polls_per_gateway_s"])


if __name__ == "__main__":  # python -m bench.levels [VIEWERS ...]
    work = Path(tempfile.mkdtemp(prefix="wrencos-levels-"))
    for n in [int(a) for a in sys.argv[1:]] or [100, 10_000]:
        print(n, run_levels(n, work), flush=True)
