"""What an idle stream actor costs: `python -m bench.idle_actor`.

Starts a local Ray and the embedded database, one spare stream actor (no
stream) and one live stream actor with nobody watching, and prints the CPU
each process uses over 20 s and its memory. Ray's own per-process work (its
core worker threads) sets the floor: this is why a 2-core machine does not
hold hundreds of live streams with room to spare.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import psutil
import ray

from actors import handles
from actors.config import ActorConfig
from persistence.database import DatabaseConfig
from persistence.embedded import EmbeddedMongo

WINDOW_S = 20.0


def main() -> None:
    ray.init(address="local", resources=handles.SINGLE_NODE_RESOURCES, include_dashboard=False, log_to_driver=False)
    try:
        with EmbeddedMongo(Path(tempfile.mkdtemp(prefix="wrencos-idle-"))) as db:
            config = ActorConfig(db=DatabaseConfig(uri=db.uri, name="idle"), spare_actors=0)
            spare = handles.create_spare_actor(config)
            ray.get(spare.warm.remote())
            live = handles.create_stream_actor("idle-stream", {"streamId": "idle-stream", "title": "idle"}, config)
            ray.get(live.ready.remote())
            procs = {name: psutil.Process(ray.get(a.info.remote())["pid"]) for name, a in
                     (("spare (no stream)", spare), ("live, nobody watching", live))}
            time.sleep(3)
            before = {k: sum(p.cpu_times()[:2]) for k, p in procs.items()}
            time.sleep(WINDOW_S)
            for name, p in procs.items():
                cpu = 100 * (sum(p.cpu_times()[:2]) - before[name]) / WINDOW_S
                uss = p.memory_full_info().uss / 2**20
                print(f"{name:<24} {cpu:5.2f} % of a core   {uss:5.1f} MiB (USS)   {p.num_threads()} threads")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
