"""What an idle stream actor costs, next to a bare Ray actor: `python -m bench.idle_actor`.

Starts a local Ray and the embedded database, then three actor processes: a
bare Ray actor (an empty class given one argument, as ours are: Ray's own
floor), one spare stream actor (no stream) and one live stream actor with
nobody watching. For each it prints the CPU used over `--seconds` (60) and its
memory from `/proc/PID/smaps_rollup`: USS (private memory, what one more actor
adds) and PSS (private plus its share of what processes share), and the
top-level packages the live actor's process imported beyond the bare actor's.
Then the live actor carries chat at `--chat-rate` messages a second for
`--chat-seconds` (one gateway submitting them one at a time and long-polling
the events, as a relay does), and its CPU per chat event is measured (the
actor's process only: the database's share is not in it).

Last, what a node can hold: live streams per GiB (by USS per actor) and per
core: idle (by idle CPU per actor) and busy (idle CPU plus the CPU of
`--chat-rate` chat events a second, per stream).
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
from core.commands import Chat
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


def _top_level_modules(_actor: object) -> list[str]:
    """Run inside an actor (Ray's `__ray_call__`): the top-level packages its process has imported."""
    return sorted({name.split(".")[0] for name in sys.modules})


async def _chat(live: StreamClient, rate: float, seconds: float) -> int:
    """Chat at `rate` a second for `seconds` through one gateway, its events long-polled; the events polled."""
    stop = time.monotonic() + seconds
    polled = 0

    async def poll() -> None:
        nonlocal polled
        after, epoch = 0, None
        while time.monotonic() < stop:
            answer = await live.poll("bench-gw", after, epoch, 1.0)
            epoch = answer.epoch
            if answer.snapshot is not None:
                after = int(answer.snapshot["seq"])
            for seq, _ in answer.events:
                after = seq
                polled += 1

    poller = asyncio.get_running_loop().create_task(poll())
    began, n = time.monotonic(), 0
    while time.monotonic() < stop:
        n += 1
        message = Chat(username="bench", message=f"message {n}", is_admin=False, session_id="bench-session")
        await live.submit("bench-gw", f"b{n}", [message])
        await asyncio.sleep(max(0.0, began + n / rate - time.monotonic()))  # paced: the n-th at n / rate
    await poller
    return polled


async def _pids(spare: StreamClient, live: StreamClient) -> tuple[int, int]:
    """Both stream actors' process ids, once the spare is up and the live one loaded."""
    await spare.warm()
    await live.ready()
    return int((await spare.info())["pid"]), int((await live.info())["pid"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="the idle CPU window (60)")
    parser.add_argument("--chat-rate", type=float, default=10.0, help="chat messages a second, busy (10)")
    parser.add_argument("--chat-seconds", type=float, default=20.0, help="the busy window (20)")
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
            bare_modules: set[str] = set(ray.get(bare.__ray_call__.remote(_top_level_modules)))
            live_modules: set[str] = set(ray.get(live.handle.__ray_call__.remote(_top_level_modules)))
            print(f"the live actor's imports beyond the bare one's: {', '.join(sorted(live_modules - bare_modules))}")

            print(
                f"chat at {args.chat_rate:g}/s for {args.chat_seconds:g} s through one gateway ...",
                file=sys.stderr,
                flush=True,
            )
            live_proc = procs["live, nobody watching"]
            cpu_before = sum(live_proc.cpu_times()[:2])
            events = asyncio.run(_chat(live, args.chat_rate, args.chat_seconds))
            busy_cpu_s = sum(live_proc.cpu_times()[:2]) - cpu_before
            idle_share = cpu["live, nobody watching"] / 100  # of a core
            per_event_ms = 1000 * max(0.0, busy_cpu_s - idle_share * args.chat_seconds) / max(1, events)
            print(f"chat events polled: {events}   the actor's CPU per chat event: {per_event_ms:.2f} ms")

            live_mem = smaps(live_pid)["uss"]
            idle_per_core = 1 / idle_share if idle_share > 0 else float("inf")
            busy_share = idle_share + args.chat_rate * per_event_ms / 1000
            print(
                f"live streams a node can hold: per GiB {1024 / live_mem:.0f} (USS {live_mem:.1f} MiB each);"
                f" per core {idle_per_core:.0f} idle, {1 / busy_share:.0f} at {args.chat_rate:g} chat/s each"
                f" ({100 * busy_share:.2f} % of a core each)"
            )
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
