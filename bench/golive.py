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

Where the time goes: the registry runs at debug level and logs
`go_live_stages` per go-live (waiting for the stream's lock, the durable live
mark and how many go-lives shared its write, finding the actor, the actor's
call, the whole); the benchmark reads them from the registry's log and prints
p50 / p99 per stage (`--no-stages`: info level, no table).
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
# The last reserved actor's process has just started: its start-up work (and the other 99's) is
# over before the show's time in earnest (they are reserved up to two minutes ahead), so the
# go-lives begin this long after the last reservation.
SETTLE_S = 10.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def go_live_all(
    registry: RegistryClient, ids: list[str], spread_s: float = 0.0
) -> tuple[list[float], list[float]]:
    """Every stream's go-live, started at once or evenly over `spread_s`; each
    one's seconds to its answer. Then, once all have answered, the first call
    of each actor (a snapshot, all at once, as gateways following the
    announcements would): the seconds each took, a prepared actor's switch to
    live included (asked apart, so that this process's own calls do not slow
    the go-lives it measures)."""

    async def one(stream_id: str, delay: float) -> tuple[float, Any]:
        await asyncio.sleep(delay)
        began = time.perf_counter()
        answer = await registry.start_stream(stream_id)
        if not answer.ok:
            raise RuntimeError(f"stream {stream_id} did not go live: {answer.code} {answer.message}")
        return time.perf_counter() - began, answer.actor

    async def first_answer(stream_id: str, actor: Any) -> float:
        began = time.perf_counter()
        await StreamClient(actor, stream_id).snapshot()
        return time.perf_counter() - began

    answers = await asyncio.gather(*(one(sid, spread_s * k / len(ids)) for k, sid in enumerate(ids)))
    firsts = await asyncio.gather(*(first_answer(sid, actor) for sid, (_, actor) in zip(ids, answers, strict=True)))
    return [seconds for seconds, _ in answers], list(firsts)


async def scheduled(
    registry: RegistryClient, streams: StreamStore, n: int, spread_s: float
) -> tuple[list[float], list[float], int, list[float], float, list[str]]:
    """The go-lives' seconds, the seconds to their actor's first answer, how many were served by
    their reserved actor, those actors' load seconds (ahead of the go-live once prepared), the
    registry's CPU milliseconds per go-live, and the streams' ids."""
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
    progress(f"  all {n} reserved; {SETTLE_S:g} s later, going live over {spread_s:g} s")
    await asyncio.sleep(SETTLE_S)
    registry_process = psutil.Process(await registry.ping_pid())
    cpu_before = sum(registry_process.cpu_times()[:2])
    seconds, serving = await go_live_all(registry, ids, spread_s)
    registry_cpu_ms = 1000 * (sum(registry_process.cpu_times()[:2]) - cpu_before) / n
    live = await registry.live()
    infos = await asyncio.gather(*(StreamClient(live.actors[sid], sid).info() for sid in ids))
    served = sum(1 for sid, info in zip(ids, infos, strict=True) if info["pid"] == pids[sid])
    await stop_all(registry, ids)
    return seconds, serving, served, [float(i["loadSeconds"] or 0.0) for i in infos], registry_cpu_ms, ids


async def unscheduled(registry: RegistryClient, streams: StreamStore, n: int) -> tuple[list[float], list[str]]:
    ids = [(await streams.create(title=f"unscheduled {i}"))["_id"] for i in range(n)]
    progress(f"  {n} unscheduled streams going live together")
    seconds, _ = await go_live_all(registry, ids)
    await stop_all(registry, ids)
    return seconds, ids


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


STAGES = (  # the fields of the registry's `go_live_stages` (debug level), in the order a go-live passes them
    ("lock_ms", "call started to the stream's lock taken"),
    ("mark_ms", "the durable live mark (shared write)"),
    ("group", "go-lives sharing that write (count)"),
    ("actor_found_ms", "finding its actor (reserved, spare)"),
    ("actor_ms", "the actor's call (go-live / adopt)"),
    ("total_ms", "in the registry, all in"),
)


def registry_log(pid: int) -> Path | None:
    """The file the registry's process writes its log lines to (its Ray worker's stderr)."""
    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    return next(iter(sorted(logs.glob(f"worker-*-{pid}.err"))), None)


def stage_lines(path: Path | None, ids: list[str]) -> list[dict[str, Any]]:
    """The `go_live_stages` lines of the registry's log for these streams (none unless it logs at debug level)."""
    if path is None:
        return []
    wanted, found = set(ids), []
    for line in path.read_text(errors="replace").splitlines():
        if '"go_live_stages"' not in line:
            continue
        try:
            entry = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        if entry.get("stream_id") in wanted:
            found.append(entry)
    return found


def report_stages(entries: list[dict[str, Any]]) -> None:
    if not entries:
        return
    paths = sorted({str(e.get("path")) for e in entries})
    print(f"{'':<4}where the time goes ({len(entries)} go-lives, actor path: {', '.join(paths)}): p50 / p99")
    for key, label in STAGES:
        values = [float(e[key]) for e in entries if isinstance(e.get(key), int | float)]
        if values:
            unit = "" if key == "group" else " ms"
            print(f"{'':<6}{label:<44} {percentile(values, 50):8.1f} / {percentile(values, 99):8.1f}{unit}")


async def run(uri: str, n: int, spread_s: float, baseline: bool, stages: bool) -> None:
    db_config = DatabaseConfig(uri=uri, name="golive")
    config = ActorConfig(
        db=db_config, prewarm_seconds=120.0, log_level="debug" if stages else "info", log_format="json"
    )
    registry = RegistryClient(ensure_registry(config))
    await registry.live()  # loaded
    registry_pid = await registry.ping_pid()
    streams = StreamStore(connect(db_config))
    for name, spread in ((f"over {spread_s:g} s", spread_s), ("all at once", 0.0)):
        progress(f"scheduled, {name}: {n} streams scheduled for the same minute")
        load = psutil.getloadavg()
        seconds, serving, served, loads, registry_cpu_ms, ids = await scheduled(registry, streams, n, spread)
        report(f"scheduled, {name}", seconds)
        report("  then its actor's 1st answer", serving)
        report("  actor loading (ahead)", loads)
        print(f"{'':<28} {served}/{n} served by the actor reserved for them")
        print(f"{'':<28} the registry's CPU: {registry_cpu_ms:.1f} ms per go-live")
        print(f"{'':<28} load average at the start: {load[0]:.1f}")
        report_stages(stage_lines(registry_log(registry_pid), ids))
    if baseline:
        progress(f"baseline: {n} unscheduled streams")
        load = psutil.getloadavg()
        seconds, ids = await unscheduled(registry, streams, n)
        report("unscheduled (spare pool)", seconds)
        print(f"{'':<28} load average at the start: {load[0]:.1f}")
        report_stages(stage_lines(registry_log(registry_pid), ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=100, help="streams going live at once (100)")
    parser.add_argument("--spread", type=float, default=60.0, help="seconds the scheduled go-lives spread over (60)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the unscheduled burst")
    parser.add_argument(
        "--no-stages", dest="stages", action="store_false", help="the registry at info level: no per-stage table"
    )
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
            asyncio.run(run(db.uri, args.streams, args.spread, args.baseline, args.stages))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
