"""One soak: start the system, put the load tester and the opted-in apps on it, inject the faults,
probe it, sample its memory, then read back what was stored and judge (`verdict`). Progress is
shown while it runs (elapsed, next fault, acknowledgements so far); the report is written as JSON,
with a plot (memory over time, acknowledgements per second, the faults marked)."""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import logging
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ray
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from actors.registry_client import RegistryClient
from bench.soak import faults as fault_plan
from bench.soak.apps import HUNG_AFTER_S, SLOW_AFTER_S, Ledger, OptedInApp
from bench.soak.memory import MemoryLog
from bench.soak.probes import ProbeLog, probe_forever
from bench.soak.system import ADMIN_EMAIL, ADMIN_PASSWORD, DB_NAME, SoakSystem
from bench.soak.verdict import MAX_GROWTH_MIB_PER_HOUR, judge, stored_figures
from loadtest import admin
from loadtest.config import Gateway as LoadGateway

MEMORY_EVERY_S = 10.0
DRAIN_S = 60.0  # after the load: how long the apps may take to have every command answered
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Options:
    minutes: float = 20.0
    streams: int = 2  # load-tester streams (plus one audit stream for the opted-in apps)
    viewers: int = 20  # per stream and per protocol
    chat_rate: float = 2.0  # per stream and per protocol
    like_rate: float = 2.0
    apps: int = 4  # opted-in apps that audit every command, spread over the gateways
    out_dir: Path = ROOT / "reports"
    name: str = "soak"
    live: bool = True

    @property
    def duration_s(self) -> float:
        return self.minutes * 60


def parse(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    p.add_argument("--minutes", type=float, default=20.0, help="length of the load and the fault schedule")
    p.add_argument("--streams", type=int, default=2, help="streams for the load tester")
    p.add_argument("--viewers", type=int, default=20, help="load-tester viewers per stream, per protocol")
    p.add_argument("--chat-rate", type=float, default=2.0, help="load-tester chat/s per stream, per protocol")
    p.add_argument("--like-rate", type=float, default=2.0, help="load-tester like toggles/s per stream, per protocol")
    p.add_argument("--apps", type=int, default=4, help="opted-in apps that account for every command")
    p.add_argument("--out-dir", type=Path, default=ROOT / "reports")
    p.add_argument("--name", default="soak", help="report file names: OUT_DIR/NAME.json, NAME.png")
    p.add_argument("--no-live", action="store_true", help="plain progress lines instead of a live display")
    a = p.parse_args(argv)
    return Options(a.minutes, a.streams, a.viewers, a.chat_rate, a.like_rate, a.apps, a.out_dir, a.name, not a.no_live)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    console = Console(stderr=True)
    work = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    system = SoakSystem(work)
    console.print(f"soak: {opts.minutes:g} min; processes and logs under {work}")
    t0 = time.monotonic()
    try:
        system.start()
        console.print(f"soak: system up in {time.monotonic() - t0:.0f} s (database, two Ray nodes, two gateways)")
        assert system.ray is not None
        ray.init(
            address=system.ray.address,
            namespace=system.namespace,
            configure_logging=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        report = asyncio.run(soak(opts, system, console, work))
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        system.stop()
    return 0 if report["verdict"]["passed"] else 1


def loadtest_command(
    opts: Options, system: SoakSystem, streams: list[str], protocol: str, json_path: Path
) -> list[str]:
    cmd = [sys.executable, "-m", "wrencos", "loadtest", "run"]
    for gw in system.gateways:
        cmd += ["--gateway", gw.url]
    for sid in streams:
        cmd += ["--stream-id", sid]
    cmd += [
        "--viewers", str(opts.viewers), "--chat-rate", str(opts.chat_rate), "--like-rate", str(opts.like_rate),
        "--duration", str(opts.duration_s), "--protocol", protocol, "--workers", "1", "--ramp", "50",
        "--drain", "2", "--settle", "2",  # the soak reads stored likes itself: no long wait for counts to settle
        "--max-reconnects", "1000", "--no-live", "--name", f"{opts.name}-{protocol}",
        "--json", str(json_path), "--html", str(json_path.with_suffix(".html")),
    ]  # fmt: skip
    return cmd


def loadtest_figures(path: Path) -> dict[str, Any]:
    """From a load tester's JSON report: its run id, acks, unacknowledged messages, errors by kind."""
    if not path.exists():
        return {"acks": None, "error": "no report"}
    report = json.loads(path.read_text())
    counters = report["raw"]["counters"]
    unacked = 0
    for note in report.get("notes", []):
        m = re.match(r"(\d+) chat message\(s\) were never acknowledged", note)
        if m:
            unacked = int(m.group(1))
    return {
        "runId": report["config"]["runId"],
        "protocol": report["config"]["protocol"],
        "chatSent": counters.get("chat_sent", 0),
        "likesSent": counters.get("likes_sent", 0),
        "acks": counters.get("acks", 0) if report["config"]["protocol"] >= 2 else None,
        "unacked": unacked,
        "reconnects": counters.get("reconnects", 0),
        "errors": report["raw"]["errors"],
        "notes": report.get("notes", []),
    }


async def role_pids(system: SoakSystem, streams: list[str]) -> dict[str, int]:
    """The pid of every long-lived process now, by role; a role whose process cannot be asked is left out."""
    pids = {f"gateway-{gw.name}": gw.pid for gw in system.gateways if gw.pid is not None}
    with contextlib.suppress(OSError, ValueError):
        pids["db"] = system.db_pid()
    pids.update(system.ray_pids())
    try:
        registry = await asyncio.to_thread(RegistryClient.find)
        if registry is not None:
            pids["registry"] = await asyncio.wait_for(registry.ping_pid(), 5)
            for sid in streams:
                actor = await asyncio.wait_for(registry.stream_client(sid), 5)
                if actor is not None:
                    pids[f"stream:{sid[-6:]}"] = int((await actor.info(timeout_s=5))["pid"])
    except Exception:  # noqa: BLE001 - during a fault the actors may not answer: this sample goes without them
        pass
    return pids


async def soak(opts: Options, system: SoakSystem, console: Console, work: Path) -> dict[str, Any]:
    gws = [LoadGateway.parse(gw.url) for gw in system.gateways]
    token = await admin.login(gws[0], ADMIN_EMAIL, ADMIN_PASSWORD)
    streams = await admin.create_streams(gws[0], token, opts.streams + 1, opts.name)
    audit_stream, load_streams = streams[0], streams[1:]
    await admin.wait_live(gws, streams)

    reports = {p: work / f"loadtest-{p}.json" for p in ("v2", "v1")}
    testers = {
        p: subprocess.Popen(
            loadtest_command(opts, system, load_streams, p, path),
            stdout=open(work / f"loadtest-{p}.log", "wb"),  # noqa: SIM115 - the child holds it; closed at exit
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        for p, path in reports.items()
    }
    started = time.monotonic()

    def clock() -> float:
        return time.monotonic() - started

    ledger = Ledger()
    apps = [
        OptedInApp(f"app{i}", system.gateways[i % len(system.gateways)].url.replace("http", "ws") + "/ws",
                   audit_stream, ledger, started, chat_per_s=2.0)
        for i in range(opts.apps)
    ]  # fmt: skip
    app_tasks = [asyncio.create_task(a.run()) for a in apps]
    probes = ProbeLog()
    probe_task = asyncio.create_task(probe_forever([(g.name, g.url) for g in system.gateways], probes, started))
    memory = MemoryLog()
    faults = fault_plan.schedule(opts.duration_s, [*load_streams, audit_stream], [g.name for g in system.gateways])
    fault_task = asyncio.create_task(fault_plan.run_schedule(faults, system, started))

    async def sample_memory() -> None:
        while True:
            memory.sample(clock(), await role_pids(system, streams))
            await asyncio.sleep(MEMORY_EVERY_S)

    memory_task = asyncio.create_task(sample_memory())
    await show_progress(opts, console, clock, faults, ledger, probes)

    # The load is over: every app's command must now be answered (resent where a connection dropped).
    for a in apps:
        a.stop_sending()
    deadline = time.monotonic() + DRAIN_S
    while any(a.pending for a in apps) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    await fault_task  # the last fault is long over by now; never leave one half done
    unanswered = sum(len(a.pending) for a in apps)
    for a in apps:
        await a.close()
    await asyncio.gather(*app_tasks, return_exceptions=True)
    for p, proc in testers.items():
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 180)
        except TimeoutError:
            proc.kill()
            console.print(f"[red]load tester {p} did not finish; killed[/]")
    memory.sample(clock(), await role_pids(system, streams))
    memory_task.cancel()
    probe_task.cancel()
    await asyncio.gather(memory_task, probe_task, return_exceptions=True)

    console.print(f"soak: load over; apps answered and load testers done {clock() - opts.duration_s:.0f} s later")
    # Stop every stream (its final state stored), then read back what the database holds.
    await stop_all(gws[0].http, token, streams)
    lt = {p: loadtest_figures(path) for p, path in reports.items()}
    run_ids = {p: f["runId"] for p, f in lt.items() if "runId" in f}
    stored = await stored_figures(system.db_uri, DB_NAME, audit_stream, load_streams, run_ids)
    expected_likes = sum(1 for a in apps if a.liked)
    mem = memory.summary(warmup_s=min(60.0, 0.25 * opts.duration_s))
    fault_dicts = [f.as_dict() for f in faults]
    acks_at = sorted(ledger.ack_times)
    for f in fault_dicts:  # the opted-in apps' chat flowing again: the first ack after the fault was over
        i = bisect.bisect_right(acks_at, f["endedAtS"] or 0.0)
        f["firstAckAfterS"] = round(acks_at[i] - f["endedAtS"], 2) if i < len(acks_at) and f["endedAtS"] else None
    verdict = judge(
        ledger.acked_chat, expected_likes, stored, {"v2": lt["v2"]}, len(probes.hung) + len(ledger.hung),
        unanswered, fault_dicts, mem,
    )  # fmt: skip
    report = {
        "format": "wrencos-soak/1",
        "command": "python -m bench.soak " + " ".join(sys.argv[1:]),
        "minutes": opts.minutes,
        "topology": {
            "gateways": len(system.gateways),
            "rayNodes": ["head (registry, gateway seats)", "stream (stream actors)"],
            "database": "embedded nx-27017",
            "loadStreams": len(load_streams),
            "auditStream": 1,
            "viewers": {"v2": opts.viewers * len(load_streams), "v1": opts.viewers * len(load_streams)},
            "optedInApps": opts.apps,
        },
        "verdict": verdict,
        "apps": {
            "sent": ledger.sent,
            "ackedChat": len(ledger.acked_chat),
            "ackedLikes": ledger.acked_likes,
            "resent": ledger.resent,
            "reconnects": ledger.reconnects,
            "errors": dict(ledger.errors),
            "hung": ledger.hung,
            "hungAfterS": HUNG_AFTER_S,
            "slow": ledger.slow,
            "slowAfterS": SLOW_AFTER_S,
            "acksPerSecond": [ledger.acks_by_second.get(s, 0) for s in range(int(clock()) + 1)],
        },
        "loadtest": lt,
        "stored": {k: v for k, v in stored.items() if k != "auditChat"} | {"auditChat": len(stored["auditChat"])},
        "rest": {
            "requests": probes.requests,
            "statuses": dict(probes.statuses),
            "failures": dict(probes.failures),
            "hung": probes.hung,
            "slowestS": round(probes.slowest_s, 2),
        },
        "faults": fault_dicts,
        "memory": mem,
        "memoryBoundMiBPerHour": MAX_GROWTH_MIB_PER_HOUR,
        "memorySamples": {r: [[s.t, s.rss_mib] for s in ss] for r, ss in memory.samples.items()},
        "logs": str(work),
    }
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = opts.out_dir / f"{opts.name}.json"
    json_path.write_text(json.dumps(report, indent=1))
    png = plot(report, opts.out_dir / f"{opts.name}.png")
    print_summary(console, report, [str(json_path)] + ([str(png)] if png else []))
    return report


async def stop_all(base_url: str, token: str, streams: list[str], timeout_s: float = 120.0) -> None:
    """Stop each stream, retrying while a gateway answers 503 (a dependency still recovering)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
        for sid in streams:
            while True:
                try:
                    r = await c.post(f"/livestreams/{sid}/stop")
                    if r.status_code < 500 or time.monotonic() > deadline:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                await asyncio.sleep(1.0)


async def show_progress(
    opts: Options, console: Console, clock: Any, faults: list[fault_plan.Fault], ledger: Ledger, probes: ProbeLog
) -> None:
    """Until the load ends: elapsed, the next fault, acknowledgements and hangs so far."""
    progress = Progress(TextColumn("[bold]soak"), BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    task = progress.add_task("", total=opts.duration_s)

    def view() -> Group:
        now = clock()
        nxt = next((f for f in faults if f.started_s is None), None)
        current = next((f for f in faults if f.started_s is not None and f.ended_s is None), None)
        progress.update(task, completed=min(now, opts.duration_s), description=f"{now:,.0f}/{opts.duration_s:,.0f} s")
        t = Table(box=None, show_header=True, header_style="bold")
        for col in ("now", "next fault", "faults done", "acks", "resent", "reconnects", "slow", "hung", "REST probes"):
            t.add_column(col, justify="right")
        t.add_row(
            current.kind if current else "–",
            f"{nxt.kind} in {nxt.at_s - now:,.0f} s" if nxt else "–",
            f"{sum(f.done for f in faults)}/{len(faults)}",
            f"{ledger.acked:,}",
            f"{ledger.resent:,}",
            f"{ledger.reconnects:,}",
            f"{len(ledger.slow)}",
            f"{len(ledger.hung) + len(probes.hung)}",
            f"{probes.requests:,}",
        )
        return Group(progress, t)

    if opts.live and console.is_terminal:
        with Live(view(), console=console, refresh_per_second=2) as live:
            while clock() < opts.duration_s:
                await asyncio.sleep(0.5)
                live.update(view())
        return
    last = -1e9
    while clock() < opts.duration_s:
        if clock() - last >= 15:
            last = clock()
            nxt = next((f for f in faults if f.started_s is None), None)
            console.print(
                f"soak {clock():6.0f}/{opts.duration_s:.0f} s  next fault: "
                f"{f'{nxt.kind} at {nxt.at_s:.0f} s' if nxt else '-'}  faults done "
                f"{sum(f.done for f in faults)}/{len(faults)}  acks {ledger.acked}  resent {ledger.resent}  "
                f"slow {len(ledger.slow)}  hung {len(ledger.hung) + len(probes.hung)}"
            )
        await asyncio.sleep(0.5)


def print_summary(console: Console, report: dict[str, Any], paths: list[str]) -> None:
    t = Table(title=f"soak, {report['minutes']:g} min", show_header=True, header_style="bold")
    t.add_column("check")
    t.add_column("ok")
    t.add_column("figures")
    for name, c in report["verdict"]["checks"].items():
        figures = ", ".join(f"{k} {v}" for k, v in c.items() if k != "ok" and v not in ([], {}, None))
        t.add_row(name, "[green]yes[/]" if c["ok"] else "[red]NO[/]", figures)
    console.print(t)
    m = Table(title="memory (RSS)", show_header=True, header_style="bold")
    for col in ("process", "start MiB", "end MiB", "processes", "MiB/hour", "judged"):
        m.add_column(col, justify="right")
    for role, s in sorted(report["memory"].items()):
        m.add_row(role, f"{s['startMiB']:.0f}", f"{s['endMiB']:.0f}", str(s["processes"]),
                  f"{s['growthMiBPerHour']:+.1f}", "yes" if s["judged"] else "no")  # fmt: skip
    console.print(m)
    for f in report["faults"]:
        console.print(
            f"  fault {f['kind']:<13} {f['target'] or '':<26} at {f['startedAtS']} s, over at {f['endedAtS']} s, "
            f"next ack {f['firstAckAfterS']} s later" + (f"  [red]{f['error']}[/]" if f["error"] else "")
        )
    errors = dict(report["apps"]["errors"])
    for p, lt in report["loadtest"].items():
        for k, n in (lt.get("errors") or {}).items():
            errors[f"loadtest {p}: {k}"] = n
    console.print("errors by kind: " + (", ".join(f"{k} ×{n}" for k, n in sorted(errors.items())) or "none"))
    slow = report["apps"]["slow"]
    console.print(
        f"opted-in apps: {report['apps']['sent']} commands, {report['apps']['resent']} resent, "
        f"{report['apps']['reconnects']} reconnects (load testers: "
        + ", ".join(f"{p} {lt.get('reconnects')}" for p, lt in report["loadtest"].items())
        + "), "
        f"{len(slow)} answered after more than {report['apps']['slowAfterS']:g} s"
        + (f" (sent at {sorted({x['sentAtS'] for x in slow})[:10]} s)" if slow else "")
    )
    console.print("REST: " + ", ".join(f"{k} ×{n}" for k, n in sorted(report["rest"]["statuses"].items())))
    verdict = "[bold green]PASSED[/]" if report["verdict"]["passed"] else "[bold red]FAILED[/]"
    console.print(f"verdict: {verdict}; report: {', '.join(paths)}")


def plot(report: dict[str, Any], path: Path) -> Path | None:
    """Memory of each process over time and acknowledgements per second, the faults marked.
    (matplotlib comes with the `test` and `loadtest` extras; without it, no plot.)"""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for role, samples in sorted(report["memorySamples"].items()):
        top.plot([s[0] for s in samples], [s[1] for s in samples], label=role, linewidth=1)
    top.set_ylabel("RSS (MiB)")
    top.legend(fontsize=7, ncol=3)
    acks = report["apps"]["acksPerSecond"]
    bottom.plot(range(len(acks)), acks, linewidth=0.8, color="tab:green")
    bottom.set_ylabel("acks/s (opted-in apps)")
    bottom.set_xlabel("seconds")
    for f in report["faults"]:
        if f["startedAtS"] is None:
            continue
        for ax in (top, bottom):
            ax.axvspan(f["startedAtS"], max(f["endedAtS"] or f["startedAtS"], f["startedAtS"] + 0.5),
                       color="tab:red", alpha=0.2)  # fmt: skip
        bottom.annotate(f["kind"], (f["startedAtS"], 0), rotation=90, fontsize=7, va="bottom")
    fig.suptitle(f"soak, {report['minutes']:g} min: {'passed' if report['verdict']['passed'] else 'FAILED'}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
