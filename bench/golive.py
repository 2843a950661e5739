"""How long going live takes when many streams go live at once: `python -m bench.golive`.

Starts a local Ray, the embedded database and the stream registry, and makes
`--streams` streams (100) go live in the same minute:

* **scheduled**: each has `scheduledAt` a minute ahead, so the registry
  reserves an actor for each (`PREWARM_SECONDS` ahead; here at once, as they
  are all within the window); once every one is reserved they go live, spread
  over `--spread` seconds (60: hosts pressing start in that minute), and then
  another `--streams` of them all at the same instant (the worst case);
* **unscheduled** (`--baseline`, on by default): streams without a schedule go
  live together by the ordinary path, the adaptive spare pool (today's burst).

A go-live's time is what the registry's caller (a gateway) waits: from
`start_stream` to its answer, the stream's actor loaded. Prints p50, p99 and
the longest of each, and checks each scheduled stream was served by the actor
reserved for it. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import ray

from actors.config import ActorConfig
from actors.placement import SINGLE_NODE_RESOURCES
from actors.registry_client import RegistryClient
from actors.registry_lifecycle import ensure_registry
from actors.stream_client import StreamClient
from persistence.database import DatabaseConfig, connect
from persistence.embedded import EmbeddedMongo
from persistence.streams import StreamStore
from runtime.clock import iso, now

PREWARM_WAIT_S = 600.0  # reserving 100 actors on a busy 2-core machine takes a minute or two


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def go_live_all(registry: RegistryClient, ids: list[str], spread_s: float = 0.0) -> list[float]:
    """Every stream's go-live, started at once or evenly over `spread_s`; each one's seconds to its answer."""

    async def one(stream_id: str, delay: float) -> float:
        await asyncio.sleep(delay)
        began = time.perf_counter()
        answer = await registry.start_stream(stream_id)
        if not answer.ok:
            raise RuntimeError(f"stream {stream_id} did not go live: {answer.code} {answer.message}")
        return time.perf_counter() - began

    return list(await asyncio.gather(*(one(sid, spread_s * k / len(ids)) for k, sid in enumerate(ids))))


async def scheduled(
    registry: RegistryClient, streams: StreamStore, n: int, spread_s: float
) -> tuple[list[float], int, list[float], float]:
    """The go-lives' seconds, how many were served by their reserved actor, those actors' load
    seconds, and the registry's CPU milliseconds per go-live."""
    at = iso(now() + timedelta(seconds=60))
    ids = [(await streams.create(title=f"scheduled {i}", scheduled_at=at))["_id"] for i in range(n)]
    await registry.schedule_changed(ids[0])
    began = time.monotonic()
    reserved: dict[str, Any] = {}
    while len(reserved) < n:
        if time.monotonic() - began > PREWARM_WAIT_S:
            raise RuntimeError(f"only {len(reserved)} of {n} actors reserved after {PREWARM_WAIT_S:g} s")
        await asyncio.sleep(1.0)
        reserved = {k: v for k, v in (await registry.prewarmed()).items() if k in ids}
        progress(f"  reserved {len(reserved)}/{n} actors ({time.monotonic() - began:.0f} s)")
    pids = {sid: (await StreamClient(h, None).info())["pid"] for sid, h in reserved.items()}
    progress(f"  all {n} reserved; going live over {spread_s:g} s")
    registry_process = psutil.Process(await registry.ping_pid())
    cpu_before = sum(registry_process.cpu_times()[:2])
    seconds = await go_live_all(registry, ids, spread_s)
    registry_cpu_ms = 1000 * (sum(registry_process.cpu_times()[:2]) - cpu_before) / n
    live = await registry.live()
    infos = await asyncio.gather(*(StreamClient(live.actors[sid], sid).info() for sid in ids))
    served = sum(1 for sid, info in zip(ids, infos, strict=True) if info["pid"] == pids[sid])
    await stop_all(registry, ids)
    return seconds, served, [float(i["loadSeconds"] or 0.0) for i in infos], registry_cpu_ms


async def unscheduled(registry: RegistryClient, streams: StreamStore, n: int) -> list[float]:
    ids = [(await streams.create(title=f"unscheduled {i}"))["_id"] for i in range(n)]
    progress(f"  {n} unscheduled streams going live together")
    seconds = await go_live_all(registry, ids)
    await stop_all(registry, ids)
    return seconds


async def stop_all(registry: RegistryClient, ids: list[str]) -> None:
    """End the streams (their actors with them), so the next round starts on a quiet node."""
    progress(f"  stopping {len(ids)} streams")
    for k in range(0, len(ids), 10):
        await asyncio.gather(*(registry.stop_stream(i) for i in ids[k : k + 10]))


def report(name: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{name:<28} {len(ms):>4} go-lives   p50 {percentile(ms, 50):8.1f} ms   p99 {percentile(ms, 99):8.1f} ms"
        f"   max {max(ms):8.1f} ms"
    )


async def run(uri: str, n: int, spread_s: float, baseline: bool) -> None:
    db_config = DatabaseConfig(uri=uri, name="golive")
    config = ActorConfig(db=db_config, prewarm_seconds=120.0)
    registry = RegistryClient(ensure_registry(config))
    await registry.live()  # loaded
    streams = StreamStore(connect(db_config))
    for name, spread in ((f"over {spread_s:g} s", spread_s), ("all at once", 0.0)):
        progress(f"scheduled, {name}: {n} streams scheduled for the same minute")
        seconds, served, loads, registry_cpu_ms = await scheduled(registry, streams, n, spread)
        report(f"scheduled, {name}", seconds)
        report("  actor loading (in that)", loads)
        print(f"{'':<28} {served}/{n} served by the actor reserved for them")
        print(f"{'':<28} the registry's CPU: {registry_cpu_ms:.1f} ms per go-live")
    if baseline:
        progress(f"baseline: {n} unscheduled streams")
        report("unscheduled (spare pool)", await unscheduled(registry, streams, n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=100, help="streams going live at once (100)")
    parser.add_argument("--spread", type=float, default=60.0, help="seconds the scheduled go-lives spread over (60)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the unscheduled burst")
    args = parser.parse_args()
    ray.init(
        address="local",
        resources=SINGLE_NODE_RESOURCES,
        include_dashboard=False,
        log_to_driver=False,
        namespace="golive-bench",
    )
    try:
        with EmbeddedMongo(Path(tempfile.mkdtemp(prefix="wrencos-golive-"))) as db:
            asyncio.run(run(db.uri, args.streams, args.spread, args.baseline))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
