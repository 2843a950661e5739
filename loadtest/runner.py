"""The parent process of a run: set up streams, start the workers (one
process per core by default), run the admin actions, show live progress,
merge the workers' per-second ticks, then write the reports and check the
thresholds. `run(config)` returns the exit code: 0, 1 (a threshold missed)
or 2 (the run could not be set up)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from loadtest import admin
from loadtest.config import LoadConfig
from loadtest.console import LiveView, print_summary
from loadtest.html import write_html
from loadtest.plan import ViewerSpec, WorkerPlan
from loadtest.report import build_report, write_json
from loadtest.shipping import Crash, Final, Ticks, WorkerEnd, WorkerMessage
from loadtest.stats import Aggregate
from loadtest.worker import worker_main


def build_plans(config: LoadConfig, stream_ids: list[str]) -> list[WorkerPlan]:
    """Viewers spread over workers and gateways round-robin, interleaved across
    streams so that the ramp fills every stream at the same pace; each worker
    sends its share of each stream's chat and like rate."""
    workers = max(1, min(config.workers, config.viewers * len(stream_ids)))
    specs: list[list[ViewerSpec]] = [[] for _ in range(workers)]
    g = 0
    for i in range(config.viewers):
        for s_idx, sid in enumerate(stream_ids):
            gw = config.gateways[g % len(config.gateways)]
            specs[g % workers].append(ViewerSpec(sid, gw.ws, f"lt-{config.run_id}-{s_idx}-{i}"))
            g += 1
    stop_at: dict[str, float] = {}
    stops = [t for t, name in admin.schedule(config) if name == "stop"]
    if stops:  # senders go quiet half a second before a planned stop, so nothing is in flight at it
        stop_at = {sid: max(min(stops) - 0.5, 0.0) for sid in stream_ids}
    plans = []
    for w in range(workers):
        share = {sid: sum(1 for v in specs[w] if v.stream_id == sid) / config.viewers for sid in stream_ids}
        plans.append(
            WorkerPlan(
                index=w,
                run_id=config.run_id,
                viewers=specs[w],
                ramp_rate=config.ramp / workers if config.ramp else 0.0,
                duration=config.duration,
                drain=config.drain,
                settle=config.settle,
                chat_rate={sid: config.chat_rate * f for sid, f in share.items() if f and config.chat_rate},
                like_rate={sid: config.like_rate * f for sid, f in share.items() if f and config.like_rate},
                chat_stop_at=stop_at,
                chat_start=config.chat_start,
                protocol=config.protocol,
                message_bytes=config.message_bytes,
                connect_timeout=config.connect_timeout,
                max_reconnects=config.max_reconnects,
                connect_concurrency=config.connect_concurrency,
            )
        )
    return plans


def run(config: LoadConfig, console: Console | None = None) -> int:
    console = console or Console(stderr=True)
    try:
        return asyncio.run(_run(config, console))
    except admin.SetupError as e:
        console.print(f"[bold red]cannot run:[/] {e}")
        return 2


async def _run(config: LoadConfig, console: Console) -> int:
    gw = config.gateways[0]
    notes: list[str] = []
    token = config.admin_token
    if token is None and config.admin_email and config.admin_password:
        token = await admin.login(gw, config.admin_email, config.admin_password)
    plan_actions = admin.schedule(config)
    created: list[str] = []
    if config.stream_ids:
        stream_ids = list(config.stream_ids)
    else:
        if token is None:
            raise admin.SetupError(
                "creating streams needs admin credentials: --admin-email/--admin-password "
                "(or ADMIN_EMAIL/ADMIN_PASSWORD), --admin-token, or give --stream-id"
            )
        console.print(f"creating {config.streams} stream(s) on {gw.http} ...")
        created = stream_ids = await admin.create_streams(gw, token, config.streams, f"{config.name} {config.run_id}")
    await admin.wait_live(config.gateways, stream_ids)
    socket: admin.AdminSocket | None = None
    if token is not None and any(name == "pin" or name == "flash-sale" for _, name in plan_actions):
        socket = admin.AdminSocket(gw, token)
        await socket.open()

    plans = build_plans(config, stream_ids)
    ctx = mp.get_context("spawn")
    out: Any = ctx.Queue()
    ready: Any = ctx.Queue()
    go = ctx.Event()
    start_value = ctx.Value("q", 0)
    procs = [
        ctx.Process(
            target=worker_main, args=(p, out, ready, go, start_value), daemon=True, name=f"loadtest-worker-{p.index}"
        )
        for p in plans
    ]
    console.print(
        f"{config.total_viewers:,} viewers on {len(stream_ids)} stream(s), {len(procs)} worker process(es), "
        f"protocol v{config.protocol}, {config.duration:g} s + {config.drain:g} s drain; run id {config.run_id}"
    )
    for p in procs:
        p.start()
    try:
        for _ in procs:
            await asyncio.to_thread(ready.get, True, 120)
    except queue.Empty as e:
        for p in procs:
            p.terminate()
        raise admin.SetupError("worker processes did not start within 120 s") from e
    start_ns = time.time_ns() + 300_000_000
    start_value.value = start_ns
    go.set()

    agg = Aggregate(start_ns)
    finals: dict[int, WorkerEnd] = {}
    crashes: list[str] = []
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    interrupted = False

    def on_message(msg: WorkerMessage) -> None:
        if isinstance(msg, Ticks):
            for tick in msg.ticks:
                agg.add_tick(msg.worker, tick)
        elif isinstance(msg, Final):
            finals[msg.worker] = msg.end
            agg.add_final(msg.end)
        elif isinstance(msg, Crash):
            crashes.append(f"worker {msg.worker}: {msg.error}")
        if len(finals) + len(crashes) >= len(procs):
            done.set()

    def reader() -> None:
        while not done.is_set():
            try:
                msg = out.get(timeout=0.2)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    loop.call_soon_threadsafe(done.set)
                continue
            loop.call_soon_threadsafe(on_message, msg)

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        for p in procs:
            if p.is_alive():
                p.terminate()
        done.set()

    threading.Thread(target=reader, daemon=True, name="loadtest-reader").start()
    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
        pass

    results: list[admin.ActionResult] = []
    http = httpx.AsyncClient(base_url=gw.http, timeout=30)
    actx = admin.AdminContext(
        config=config,
        gateway=gw,
        token=token,
        socket=socket,
        start_ns=start_ns,
        http=http,
        counters=lambda name, n: agg.count(time.time_ns(), name, n),
    )

    async def run_actions() -> None:
        for at, name in plan_actions:
            await asyncio.sleep(max(start_ns / 1e9 + at - time.time(), 0))
            for sid in stream_ids:
                try:
                    res = await admin.ACTIONS[name](actx, sid)
                except Exception as e:  # noqa: BLE001 - an action failing is a finding, not a crash
                    res = admin.ActionResult(name, sid, actx.elapsed(), False, message=f"{type(e).__name__}: {e}")
                    agg.error(time.time_ns(), f"admin {name}: {type(e).__name__}")
                results.append(res)

    actions_task = asyncio.create_task(run_actions())
    total = config.duration + config.drain
    with LiveView(console, total, config.total_viewers, config.live and console.is_terminal) as view:
        while not done.is_set():
            elapsed = time.time() - start_ns / 1e9
            phase = (
                "ramping up"
                if agg.totals["connect_ok"] < config.total_viewers and elapsed < config.duration
                else "running"
                if elapsed < config.duration
                else "draining"
                if elapsed < total
                else "finishing"
            )
            view.update(agg, elapsed, phase)
            try:
                await asyncio.wait_for(done.wait(), 0.25)
            except TimeoutError:
                pass
        view.update(agg, time.time() - start_ns / 1e9, "done")
    actions_task.cancel()
    await asyncio.gather(actions_task, return_exceptions=True)
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.terminate()
    if socket is not None:
        await socket.close()
    if created and token and not config.keep_streams:
        await admin.stop_streams(gw, token, created)
    await http.aclose()

    unacked = sum(f["unacked"] for f in finals.values())
    if config.protocol >= 2:
        batches = sum(f["batches"] for f in finals.values())
        if batches == 0:
            notes.append("protocol v2 was asked for but no batch frame arrived: the server does not speak v2 yet")
        if unacked:
            notes.append(f"{unacked} chat message(s) were never acknowledged (v2 ack)")
    if crashes:
        notes += [f"crash: {c}" for c in crashes]
    if interrupted:
        notes.append("interrupted (Ctrl-C): partial figures; loss is not computed for workers that did not finish")
    if len(finals) < len(procs):
        notes.append(f"only {len(finals)} of {len(procs)} workers reported their end")
    for name in sorted({r.name for r in results if r.skipped}):
        first = next(r for r in results if r.skipped and r.name == name)
        count = sum(1 for r in results if r.skipped and r.name == name)
        notes.append(f"admin action {name} skipped {count} time(s): {first.message}")
    agg.compute_loss()
    raw = agg.raw()
    report = build_report(
        config=config.public(),
        raw=raw,
        duration=config.duration,
        stream_ids=stream_ids,
        thresholds=config.thresholds,
        actions=[r.as_dict() for r in results],
        notes=notes,
    )
    json_path = config_path(config, "json")
    html_path = config_path(config, "html")
    busiest = report["summary"]["loadGenerator"]["maxWorkerCpuPercent"]
    if busiest >= 90:
        report["notes"].append(
            f"a worker process used {busiest}% of a core in some second: the load generator itself was "
            "saturated, so latency includes its own delay; use more --workers or more machines"
        )
    write_json(report, json_path)
    write_html(report, html_path)
    print_summary(console, report, [str(json_path), str(html_path)])
    if interrupted or crashes:
        return 2 if not report["thresholds"] else (0 if report["passed"] else 1)
    return 0 if report["passed"] else 1


def config_path(config: LoadConfig, ext: str) -> Path:
    explicit = getattr(config, f"{ext}_path", None)
    if explicit:
        return Path(explicit)
    return config.out_dir / f"{config.name}-{config.run_id}.{ext}"
