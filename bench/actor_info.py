"""What a stream actor says about itself (`StreamActor.info()`, through
`actors/stream_client.py`), read from outside the system being measured.

The benchmark reports what the actor counted (like taps applied, poll answers
and events per gateway), never what the load tester sent. It asks from a
short-lived Ray driver of the system's own cluster, so the system under test
runs exactly as `make run` runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import psutil

from actors.ray_env import RAY_ENV

GCS_ADDRESS = re.compile(r"--gcs-address=(\S+)")


def gcs_address(pid: int) -> str:
    """The address of the Ray cluster that process `pid` (`wrencos run`) started: its raylet is told
    it (`--gcs-address=HOST:PORT`). Raises if no process under `pid` names one."""
    for child in psutil.Process(pid).children(recursive=True):
        try:
            found = GCS_ADDRESS.search(" ".join(child.cmdline()))
        except psutil.Error:
            continue
        if found:
            return found.group(1)
    raise RuntimeError(f"no Ray cluster under process {pid}")


def stream_info(address: str, stream_id: str, namespace: str = "wrencos", timeout: float = 120.0) -> dict[str, Any]:
    """`info()` of the actor serving `stream_id` in the cluster at `address`. Raises if the stream is
    not live there or the actor does not answer."""
    code = (
        "import asyncio, json, logging, ray\n"
        f"ray.init(address={address!r}, namespace={namespace!r}, logging_level=logging.ERROR, log_to_driver=False)\n"
        "from actors.registry_client import RegistryClient\n"
        "async def info(sid):\n"
        "    client = await RegistryClient.find().stream_client(sid)\n"
        "    if client is None:\n"
        "        raise SystemExit(f'stream {sid} is not live')\n"
        "    return await client.info()\n"
        f"print(json.dumps(asyncio.run(info({stream_id!r}))))\n"
    )
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")}, **RAY_ENV}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"cannot read the actor of stream {stream_id} ({r.returncode}): {r.stderr[-2000:]}")
    return dict(json.loads(lines[-1]))
