"""What an idle stream actor costs, next to a bare Ray actor: `python -m bench.idle_actor`.

Starts a local Ray and the embedded database, then three actor processes: a
bare Ray actor (an empty class given one argument, as ours are: Ray's own
floor), one spare stream actor (no stream) and one live stream actor with
nobody watching. For each it prints the CPU used over `--seconds` (60) and its
memory from `/proc/PID/smaps_rollup`: USS (private memory, what one more actor
adds) and PSS (private plus its share of what processes share). Then what a
node holds by that measure: live streams per GiB of memory (by USS) and per
core (by idle CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import ray

from actors import stream_lifecycle
from actors.config import ActorConfig
from actors.placement import SINGLE_NODE_RESOURCES
from actors.stream_client import StreamClient
from persistence.database import DatabaseConfig
from persistence.embedded import EmbeddedMongo

KIB = 1024


class BareActor:
    """Ray's floor: an actor with nothing of ours in it."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def pid(self) -> int:
        return os.getpid()


_RemoteBare: Any = ray.remote(BareActor)  # Ray's stubs cannot type what `options` returns


def smaps(pid: int) -> dict[str, float]:
    """USS (private clean + dirty) and PSS of a process, in MiB, from /proc/PID/smaps_rollup."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"uss": uss / KIB, "pss": fields.get("Pss", 0) / KIB}


async def _pids(spare: StreamClient, live: StreamClient) -> tuple[int, int]:
    """Both stream actors' process ids, once the spare is up and the live one loaded."""
    await spare.warm()
    await live.ready()
    return int((await spare.info())["pid"]), int((await live.info())["pid"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="the idle CPU window (60)")
    args = parser.parse_args()
    ray.init(address="local", resources=SINGLE_NODE_RESOURCES, include_dashboard=False, log_to_driver=False)
    try:
        with EmbeddedMongo(Path(tempfile.mkdtemp(prefix="wrencos-idle-"))) as db:
            config = ActorConfig(db=DatabaseConfig(uri=db.uri, name="idle"), spare_actors=0)
            bare: Any = _RemoteBare.options(num_cpus=0).remote(config)
            bare_pid = int(ray.get(bare.pid.remote()))
            spare = StreamClient(stream_lifecycle.create_spare_actor(config), None)
            live = StreamClient(
                stream_lifecycle.create_stream_actor(
                    "idle-stream", {"streamId": "idle-stream", "title": "idle"}, config
                ),
                "idle-stream",
            )
            spare_pid, live_pid = asyncio.run(_pids(spare, live))
            procs = {
                "bare Ray actor": psutil.Process(bare_pid),
                "spare (no stream)": psutil.Process(spare_pid),
                "live, nobody watching": psutil.Process(live_pid),
            }
            time.sleep(3)
            print(f"measuring idle CPU over {args.seconds:g} s ...", file=sys.stderr, flush=True)
            before = {k: sum(p.cpu_times()[:2]) for k, p in procs.items()}
            time.sleep(args.seconds)
            cpu = {k: 100 * (sum(p.cpu_times()[:2]) - before[k]) / args.seconds for k, p in procs.items()}
            for name, p in procs.items():
                m = smaps(p.pid)
                print(
                    f"{name:<24} {cpu[name]:5.2f} % of a core   USS {m['uss']:5.1f} MiB   PSS {m['pss']:5.1f} MiB"
                    f"   {p.num_threads()} threads"
                )
            live_mem = smaps(live_pid)["uss"]
            per_core = 100 / cpu["live, nobody watching"] if cpu["live, nobody watching"] > 0 else float("inf")
            print(f"live streams per GiB (by USS): {1024 / live_mem:.0f}   per core (idle CPU): {per_core:.0f}")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
