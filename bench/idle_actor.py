"""What an idle stream actor costs: `python -m bench.idle_actor`.

Starts a local Ray and the embedded database, one spare stream actor (no
stream) and one live stream actor with nobody watching, and prints the CPU
each process uses over 20 s and its memory. Ray's own per-process work (its
core worker threads) sets the floor: this is why a 2-core machine does not
hold hundreds of live streams with room to spare.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import psutil
import ray

from actors import stream_lifecycle
from actors.config import ActorConfig
from actors.placement import SINGLE_NODE_RESOURCES
from actors.stream_client import StreamClient
from persistence.database import DatabaseConfig
from persistence.embedded import EmbeddedMongo

WINDOW_S = 20.0


def main() -> None:
    ray.init(address="local", resources=SINGLE_NODE_RESOURCES, include_dashboard=False, log_to_driver=False)
    try:
        with EmbeddedMongo(Path(tempfile.mkdtemp(prefix="wrencos-idle-"))) as db:
            config = ActorConfig(db=DatabaseConfig(uri=db.uri, name="idle"), spare_actors=0)
            spare = StreamClient(stream_lifecycle.create_spare_actor(config), None)
            live = StreamClient(
                stream_lifecycle.create_stream_actor(
                    "idle-stream", {"streamId": "idle-stream", "title": "idle"}, config
                ),
                "idle-stream",
            )
            pids = asyncio.run(_pids(spare, live))
            procs = {
                name: psutil.Process(pid)
                for name, pid in (("spare (no stream)", pids[0]), ("live, nobody watching", pids[1]))
            }
            time.sleep(3)
            before = {k: sum(p.cpu_times()[:2]) for k, p in procs.items()}
            time.sleep(WINDOW_S)
            for name, p in procs.items():
                cpu = 100 * (sum(p.cpu_times()[:2]) - before[name]) / WINDOW_S
                uss = p.memory_full_info().uss / 2**20
                print(f"{name:<24} {cpu:5.2f} % of a core   {uss:5.1f} MiB (USS)   {p.num_threads()} threads")
    finally:
        ray.shutdown()


async def _pids(spare: StreamClient, live: StreamClient) -> tuple[int, int]:
    """Both actors' process ids, once the spare is up and the live one loaded."""
    await spare.warm()
    await live.ready()
    return int((await spare.info())["pid"]), int((await live.info())["pid"])


if __name__ == "__main__":
    main()
