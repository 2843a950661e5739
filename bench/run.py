"""The benchmark suite: `make bench` (or `python -m bench`).

Each scenario starts the whole system the way `make run` does (embedded
database, local Ray, one gateway), drives it with the project's load tester
from the same machine, and reads the tester's JSON report. Every scenario runs
`--runs` times (default 3) and the table shows the median of each figure
against its target. Results go to `bench/results/latest.json` and
`bench/results/latest.md` (the tables the README quotes; `--readme` puts them
there, between its bench markers: `bench/readme.py`).

What the tables can be trusted for: a run that fails is shown as FAILED (it
gives no figure, and `make bench` exits 1), never dropped from a median; the
header names the commit measured (", dirty" when the tree had changes), the
date and the machine; counts of what the system did (like taps applied, poll
answers per gateway) are read from the stream actor (`bench/actor_info.py`),
not from what the load tester sent.

Scenarios (targets from the fan-out issue):

* `v1-2000`: old apps (one event per frame), 2,000 viewers of one stream,
  50 chat messages/s: everything delivered, p99 send-to-receipt ≤ 200 ms.
* `v2-10000`: opted-in apps (batch frames), 10,000 viewers, 50 chat/s and
  500 likes/s: nothing lost, p99 ≤ 250 ms; gateway memory per connection.
* `like-storm`: 20,000 like toggles/s into one stream with 1,000 viewers and
  20 chat/s: like count exact, at most a few `stream_update`s per viewer per
  second, chat p99 at most 1.5× the same run without the storm. The count is
  compared once the stream has settled (no `stream_update` for 1 s after the
  drain, waiting at most 10 s; the wait is reported), and must be equal.
* `many-streams`: 200 live streams with 20 viewers each: stream start p99
  ≤ 1 s (the 200 started one after another); memory per stream actor. Before
  them, and reported apart (never in place of it), 20 go-lives paced at one a
  second, each stopped again: the go-live time at a steady rate.

* `side-by-side` (`bench/side_by_side.py`): the old stack (a Node `ws` server,
  `bench/baseline/`) and ours under the same loads from the same load tester,
  old-protocol viewers, p50/p99 of each and their ratios; `--quick` runs only
  its two small loads.

Nothing here asserts: it measures and prints. Timings belong here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from bench.actor_info import gcs_address, stream_info
from persistence.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ADMIN_EMAIL = "bench@example.com"
ADMIN_PASSWORD = "bench-password-42"
console = Console()
# Every simulated viewer comes from 127.0.0.1 and the storm taps 20 times a second: the abuse
# limits meant for one person's phone would measure the limits, not the fan-out.
LOAD_TEST_LIMITS = {
    "MAX_CONNECTIONS_PER_IP": "1000000",
    "LOGIN_RATE_PER_MINUTE": "0",
    "WS_FRAME_RATE_PER_SECOND": "10000",
    "WS_FRAME_BURST": "20000",
    "WS_CHAT_RATE_PER_SECOND": "1000",
    "WS_CHAT_BURST": "2000",
    "WS_LIKE_RATE_PER_SECOND": "1000",
    "WS_LIKE_BURST": "2000",
}


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    """Until the gateway at `url` answers /ready with 200; raises if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not start; see {log}")


class System:
    """`wrencos run` on a free port with a throwaway data directory."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = tempfile.mkdtemp(prefix="wrencos-bench-")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MONGODB_", "WRENCOS_"))}
        env.update(
            {
                "PORT": str(self.port),
                "HOST": "127.0.0.1",
                "WRENCOS_DATA_DIR": self.data,
                "ADMIN_EMAIL": ADMIN_EMAIL,
                "ADMIN_PASSWORD": ADMIN_PASSWORD,
                "LOG_LEVEL": "warning",
                "LOG_FORMAT": "json",
                **LOAD_TEST_LIMITS,
                **(extra_env or {}),
            }
        )
        self.log = open(Path(self.data) / "system.log", "wb")  # noqa: SIM115 - open while the system runs; stop() closes it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wrencos", "run"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_ready(self.url, self.proc, Path(self.data) / "system.log")

    def gateway_rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def actor_uss(self) -> list[int]:
        sizes = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = p.info["cmdline"] or []
            if cmd and cmd[0].startswith("ray::StreamActor"):
                try:
                    sizes.append(int(p.memory_full_info().uss))
                except psutil.Error:
                    pass
        return sizes

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


class PeakSampler:
    """Samples a number in the background; keeps the highest."""

    def __init__(self, sample: Callable[[], int], every: float = 0.5) -> None:
        self.peak = 0
        self._sample, self._every = sample, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._sample())
            except Exception:  # noqa: BLE001 - a failed sample (the process just exited) is skipped, not fatal
                pass
            self._stop.wait(self._every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


class Server(Protocol):
    """What the load tester is pointed at: ours (`System`) or the old stack (`side_by_side.Baseline`)."""

    url: str


def loadtest(system: Server, out: Path, *args: str) -> dict[str, Any]:
    """Run `wrencos loadtest run` against `system`; its JSON report. Raises if it wrote none (the run
    could not be set up): the caller counts that run as failed."""
    cmd = [sys.executable, "-m", "wrencos", "loadtest", "run", "-g", system.url, "--no-live"]
    cmd += ["--admin-email", ADMIN_EMAIL, "--admin-password", ADMIN_PASSWORD]
    cmd += ["--json", str(out), "--html", str(out.with_suffix(".html")), *args]
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def options(**values: object) -> list[str]:
    """The load tester's options as arguments: `chat_rate=50` is `--chat-rate 50`."""
    return [arg for name, value in values.items() for arg in (f"--{name.replace('_', '-')}", str(value))]


def admin_token(url: str) -> str:
    r = httpx.post(f"{url}/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30)
    r.raise_for_status()
    return str(r.json()["token"])


# ---------------------------------------------------------------- scenarios


@dataclass
class Figure:
    name: str
    target: str
    unit: str
    better: str  # "lower" | "higher" | "equal" | "about" (within 5 %: a count over a window's edges)
    limit: float | None
    values: list[float | None] = field(default_factory=list)  # one per run; None: that run failed

    @property
    def failed(self) -> int:
        return sum(1 for v in self.values if v is None)

    @property
    def median(self) -> float | None:
        """The median of the runs that were measured (failed ones are counted in `failed`, not hidden)."""
        measured = [v for v in self.values if v is not None]
        return statistics.median(measured) if measured else None

    @property
    def met(self) -> bool | None:
        m = self.median
        if self.failed:
            return False
        if m is None or self.limit is None:
            return None
        return {
            "lower": m <= self.limit,
            "higher": m >= self.limit,
            "equal": m == self.limit,
            "about": abs(m - self.limit) <= 0.05 * self.limit,
        }[self.better]


def v1_2000(run: int, work: Path, figures: dict[str, Figure]) -> None:
    system = System()
    try:
        load = options(viewers=2000, ramp=1000, chat_start=4, duration=24, chat_rate=50)
        r = loadtest(system, work / f"v1-{run}.json", *load, *options(protocol="v1", workers=2))
        chat = r["summary"]["chat"]
        figures["v1 p99"].values.append(chat["latencyMs"]["p99"])
        figures["v1 delivered"].values.append(100.0 * chat["receivedExpected"] / max(1, chat["expectedReceipts"]))
        figures["v1 deliveries/s"].values.append(r["summary"]["throughput"]["deliveriesPerSecondMean"])
    finally:
        system.stop()


def v2_10000(run: int, work: Path, figures: dict[str, Figure]) -> None:
    system = System()
    try:
        before = system.gateway_rss()
        sampler = PeakSampler(system.gateway_rss)
        load = options(viewers=10000, ramp=2500, chat_start=8, duration=28, chat_rate=50, like_rate=500)
        r = loadtest(system, work / f"v2-{run}.json", *load, *options(protocol="v2", workers=2))
        peak = sampler.stop()
        chat = r["summary"]["chat"]
        connected = max(1, r["summary"]["connections"]["peakConnected"])
        figures["v2 p99"].values.append(chat["latencyMs"]["p99"])
        figures["v2 lost"].values.append(float(chat["lost"]))
        figures["v2 memory/connection"].values.append((peak - before) / connected / 1024)
    finally:
        system.stop()


STORM_CHAT_START, STORM_DURATION = 3.0, 18.0  # seconds of the run: chat and taps from 3 s to 18 s


def like_storm(run: int, work: Path, figures: dict[str, Figure]) -> None:
    system = System()
    try:
        common = options(
            viewers=1000,
            ramp=1000,
            chat_start=STORM_CHAT_START,
            duration=STORM_DURATION,
            chat_rate=20,
            protocol="v2",
            workers=2,
        )
        calm = loadtest(system, work / f"calm-{run}.json", *common)
        # The storm's stream stays live after the run, so its actor can say how many taps it applied.
        storm = loadtest(system, work / f"storm-{run}.json", *common, "--like-rate", "20000", "--keep-streams")
        likes = storm["summary"]["likes"]
        (storm_id,) = likes["streams"]
        applied = stream_info(gcs_address(system.proc.pid), storm_id)["togglesApplied"]
        streams = list(likes["streams"].values())
        exact = all(s["expectedLikes"] == s["observedLikes"] for s in streams)
        figures["storm likes exact"].values.append(1.0 if exact else 0.0)
        # The tester compares the counts once no stream_update has come for 1 s (at most 10 s after
        # the drain): how long that took after the drain; a stream that never settled shows the bound.
        figures["storm likes settled after"].values.append(max(s.get("settleSeconds") or 0.0 for s in streams))
        # Taps the actor applied and stored, over the seconds the tester sent them (from chat_start on).
        figures["storm toggles/s (applied by the actor)"].values.append(applied / (STORM_DURATION - STORM_CHAT_START))
        figures["storm updates/viewer/s"].values.append(max(s["updatesPerViewerSecond"] for s in streams))
        calm_p99 = calm["summary"]["chat"]["latencyMs"]["p99"] or 1.0
        figures["storm chat p99 ratio"].values.append(storm["summary"]["chat"]["latencyMs"]["p99"] / calm_p99)
    finally:
        system.stop()


PACED_STARTS = 20
PACED_RATE = 1.0  # go-lives a second in the paced part of many-streams


def many_streams(run: int, work: Path, figures: dict[str, Figure]) -> None:
    system = System()
    try:
        token = admin_token(system.url)
        headers = {"Authorization": f"Bearer {token}"}
        ids, starts, paced = [], [], []
        with httpx.Client(base_url=system.url, headers=headers, timeout=120) as http:
            # First, separately: go-lives at a steady pace (one a second, as shops going live
            # through a day would), each stopped again before the back-to-back run below.
            paced_ids = [
                http.post("/livestreams", json={"title": f"paced {i}"}).json()["id"] for i in range(PACED_STARTS)
            ]
            t0 = time.perf_counter()
            for i, sid in enumerate(paced_ids):
                time.sleep(max(0.0, t0 + i / PACED_RATE - time.perf_counter()))
                t = time.perf_counter()
                http.post(f"/livestreams/{sid}/start").raise_for_status()
                paced.append(time.perf_counter() - t)
            for sid in paced_ids:
                http.post(f"/livestreams/{sid}/stop").raise_for_status()
            for i in range(200):
                ids.append(http.post("/livestreams", json={"title": f"bench {i}"}).json()["id"])
            for sid in ids:
                t = time.perf_counter()
                http.post(f"/livestreams/{sid}/start").raise_for_status()
                starts.append(time.perf_counter() - t)
        args = options(viewers=20, ramp=1000, chat_start=6, duration=16, chat_rate=1, protocol="v2", workers=2)
        for sid in ids:
            args += ["--stream-id", sid]
        r = loadtest(system, work / f"many-{run}.json", *args)
        uss = system.actor_uss()
        starts.sort()
        figures["start p99"].values.append(1000 * starts[int(0.99 * (len(starts) - 1))])
        figures["start p50"].values.append(1000 * statistics.median(starts))
        paced.sort()
        figures["paced start p99"].values.append(1000 * paced[int(0.99 * (len(paced) - 1))])
        figures["many lost"].values.append(float(r["summary"]["chat"]["lost"]))
        figures["memory/actor"].values.append(statistics.mean(uss) / 2**20 if uss else float("nan"))
    finally:
        system.stop()


def _levels(run: int, work: Path, figures: dict[str, Figure]) -> None:
    from bench.levels import levels

    levels(run, work, figures)


SCENARIOS: dict[str, tuple[Callable[[int, Path, dict[str, Figure]], None], list[Figure]]] = {
    "v1-2000": (
        v1_2000,
        [
            Figure("v1 p99", "≤ 200 ms", "ms", "lower", 200),
            Figure("v1 delivered", "100 %", "%", "higher", 100.0),
            Figure("v1 deliveries/s", "~100,000 (2,000 × 50)", "/s", "higher", None),
        ],
    ),
    "v2-10000": (
        v2_10000,
        [
            Figure("v2 p99", "≤ 250 ms", "ms", "lower", 250),
            Figure("v2 lost", "0", "", "lower", 0),
            Figure("v2 memory/connection", "measured", "KiB", "lower", None),
        ],
    ),
    "like-storm": (
        like_storm,
        [
            Figure("storm likes exact", "yes", "", "equal", 1.0),
            Figure("storm likes settled after", "measured (≤ 10 s wait)", "s", "lower", None),
            Figure("storm toggles/s (applied by the actor)", "20,000", "/s", "higher", 20000 * 0.95),
            Figure("storm updates/viewer/s", "a few (≤ 4)", "/s", "lower", 4),
            Figure("storm chat p99 ratio", "≤ 1.5 × calm", "×", "lower", 1.5),
        ],
    ),
    "many-streams": (
        many_streams,
        [
            Figure("start p99", "≤ 1,000 ms", "ms", "lower", 1000),
            Figure("start p50", "measured", "ms", "lower", None),
            Figure(
                "paced start p99",
                f"measured ({PACED_STARTS} go-lives at {PACED_RATE:g}/s, before the 200)",
                "ms",
                "lower",
                None,
            ),
            Figure("many lost", "0", "", "lower", 0),
            Figure("memory/actor", "measured", "MiB", "lower", None),
        ],
    ),
    # Fan-out in levels (scale-out issue): the actor's cost per event must not grow with viewers.
    "levels": (
        _levels,
        [
            Figure("actor CPU/event, 100 viewers", "measured", "µs", "lower", None),
            Figure("actor CPU/event, 10,000 viewers", "measured", "µs", "lower", None),
            Figure("actor CPU/event ratio 10,000 : 100", "≤ 1.5 (does not grow)", "×", "lower", 1.5),
            Figure("deliveries per event (actor's poll answers)", "2 (one per gateway)", "", "about", 2.0),
            Figure("poll answers/s per gateway, 10,000 viewers", "measured (about one per batch)", "/s", "lower", None),
        ],
    ),
}


def table(figures: list[Figure], runs: int) -> tuple[Table, str]:
    t = Table(title=f"WrenCOS Live benchmarks (median of the runs measured, {runs} per scenario)")
    for col in ("figure", "target", "median", "runs", "met"):
        t.add_column(col)
    md = ["| figure | target | median | runs | met |", "|---|---|---|---|---|"]
    for f in figures:
        med = "–" if f.median is None else f"{f.median:,.1f} {f.unit}".strip()
        runs_s = ", ".join("FAILED" if v is None else f"{v:,.1f}" for v in f.values)
        met = "FAILED" if f.failed else {True: "yes", False: "NO", None: "–"}[f.met]
        t.add_row(f.name, f.target, med, runs_s, met)
        md.append(f"| {f.name} | {f.target} | {med} | {runs_s} | {met} |")
    return t, "\n".join(md)


def commit_name() -> str:
    """`git rev-parse --short HEAD` of the code measured, with ", dirty" if it has uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True)
    commit = head.stdout.strip() or "unknown"
    return f"{commit}, dirty" if status.stdout.strip() else commit


def machine_name() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )


def run_scenario(name: str, runs: int, work: Path) -> list[Figure]:
    """`runs` runs of one scenario. A run that raises records no figure at all (what it had
    appended is taken back) and a failure in each: never a median of fewer runs in silence."""
    fn, figures = SCENARIOS[name]
    by_name = {f.name: f for f in figures}
    for run in range(1, runs + 1):
        before = {f.name: len(f.values) for f in figures}
        with console.status(f"[bold]{name}[/] run {run}/{runs} ..."):
            t = time.monotonic()
            try:
                fn(run, work, by_name)
            except Exception as e:  # noqa: BLE001 - one failed run is reported as failed; the others still run
                console.print(f"[red]{name} run {run} FAILED:[/] {e!r}")
                for f in figures:
                    del f.values[before[f.name] :]
                    f.values.append(None)
        console.print(f"{name} run {run}/{runs} done in {time.monotonic() - t:.0f} s")
    return figures


SIDE_BY_SIDE = "side-by-side"


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print and write the tables; 1 if any run failed, else 0."""
    from bench import side_by_side as sbs
    from bench.readme import README, replace_between_markers

    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", action="append", choices=[*SCENARIOS, SIDE_BY_SIDE], help="run only these scenarios")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the side-by-side scenario's small loads (100 and 1,000 viewers at 10 chat/s)",
    )
    parser.add_argument(
        "--readme", action="store_true", help="also put the tables into README.md between its bench markers"
    )
    args = parser.parse_args(argv)
    names = [SIDE_BY_SIDE] if args.quick else (args.only or [*SCENARIOS, SIDE_BY_SIDE])
    work = Path(tempfile.mkdtemp(prefix="wrencos-bench-reports-"))
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit, machine = commit_name(), machine_name()
    all_figures: list[Figure] = []
    for name in names:
        if name != SIDE_BY_SIDE:
            all_figures += run_scenario(name, args.runs, work)
    sides: dict[sbs.Load, dict[str, sbs.Measured]] = {}
    if SIDE_BY_SIDE in names:
        loads = sbs.QUICK if args.quick else sbs.LOADS
        sides = sbs.side_by_side(loads, args.runs, work, progress=console.print)
    failed = sum(f.failed for f in all_figures) + sbs.failed_runs(sides)
    header = (
        f"Commit {commit}; measured {started}; {machine}; load generator on the same machine; "
        f"{args.runs} run(s) per scenario" + (" (`--quick`)" if args.quick else "") + "."
    )
    parts = [header]
    if sides:
        parts.append(sbs.table(sides, args.runs))
        console.print(parts[-1])
    if all_figures:
        rich_table, markdown = table(all_figures, args.runs)
        console.print(rich_table)
        parts.append(markdown)
    if failed:
        parts.append(f"**{failed} run(s) FAILED**: see the rows marked FAILED.")
        console.print(f"[red]{failed} run(s) FAILED[/]")
    text = "\n\n".join(parts) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(
        json.dumps(
            {
                "commit": commit,
                "measuredAt": started,
                "machine": machine,
                "runs": args.runs,
                "quick": args.quick,
                "reports": str(work),
                "failedRuns": failed,
                "sideBySide": sbs.as_json(sides),
                "figures": [
                    {
                        "name": f.name,
                        "target": f.target,
                        "unit": f.unit,
                        "values": f.values,
                        "median": f.median,
                        "failed": f.failed,
                        "met": f.met,
                    }
                    for f in all_figures
                ],
            },
            indent=2,
        )
    )
    (RESULTS / "latest.md").write_text(text)
    if args.readme:
        README.write_text(replace_between_markers(README.read_text(), text))
        console.print(f"README.md: the bench tables replaced ({README})")
    console.print(f"results: {RESULTS / 'latest.md'}; load-test reports (HTML with plots): {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
