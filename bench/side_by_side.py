"""The `side-by-side` scenario: the old stack and ours, driven by the same load generator in the same run.

The old stack is `bench/baseline/server.js`: a Node `ws` server that speaks the
old protocol the way the old backend did (one process, every event sent at
once to every socket). Ours is `wrencos run`. Each load runs against both, one
after the other on the same machine, with the same `wrencos loadtest`
options: old-protocol (v1) viewers of one stream joining at 1,000 a second,
then 8 s of chat (and likes) from them. Chat latency is the time from a send
to each viewer's receipt; lost is the share of expected receipts that never
came. Every ratio in the table is old ÷ ours of figures measured here.

A measurement that could not be made (a server that did not start, a load
test that produced no report) is a failed run: shown as failed in the table,
never left out of it, and `make bench` exits 1.
"""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.run import ROOT, System, loadtest, options, wait_ready
from persistence.embedded import free_port

BASELINE_DIR = ROOT / "bench" / "baseline"
OLD, OURS = "old stack", "ours"
RAMP = 1000.0  # viewers joining per second
CHAT_SECONDS = 8.0


@dataclass(frozen=True)
class Load:
    """Old-protocol viewers of one stream, chat messages and like taps a second into it."""

    viewers: int
    chat_rate: float
    like_rate: float = 0.0

    @property
    def name(self) -> str:
        likes = f" + {self.like_rate:g} likes/s" if self.like_rate else ""
        return f"{self.viewers:,} viewers, {self.chat_rate:g} chat/s{likes}"


# The table (#18): quiet streams, busy streams, and busy streams under likes.
LOADS = [
    Load(100, 10),
    Load(1000, 10),
    Load(2000, 50),
    Load(5000, 20),
    Load(2000, 50, 200),
    Load(5000, 20, 100),
]
QUICK = LOADS[:2]


@dataclass
class Measured:
    """One load on one side: a figure per run, None for a run that failed (and why)."""

    p50: list[float | None] = field(default_factory=list)
    p99: list[float | None] = field(default_factory=list)
    lost: list[float | None] = field(default_factory=list)  # % of expected receipts
    failures: list[str] = field(default_factory=list)

    def add(self, report: dict[str, Any] | None, failure: str = "") -> None:
        if report is None:
            self.p50.append(None)
            self.p99.append(None)
            self.lost.append(None)
            self.failures.append(failure)
            return
        chat = report["summary"]["chat"]
        self.p50.append(chat["latencyMs"]["p50"])
        self.p99.append(chat["latencyMs"]["p99"])
        self.lost.append(100.0 * chat["lost"] / chat["expectedReceipts"] if chat["expectedReceipts"] else None)

    @staticmethod
    def median(values: list[float | None]) -> float | None:
        got = [v for v in values if v is not None]
        return statistics.median(got) if got else None

    @property
    def failed(self) -> int:
        return len(self.failures)

    def as_dict(self) -> dict[str, Any]:
        return {
            "p50": self.p50,
            "p99": self.p99,
            "lostPercent": self.lost,
            "failures": self.failures,
            "medians": {"p50": self.median(self.p50), "p99": self.median(self.p99), "lost": self.median(self.lost)},
        }


class Baseline:
    """The old stack, `node bench/baseline/server.js`, on a free port (its `ws` installed on first use)."""

    def __init__(self, work: Path) -> None:
        ensure_installed()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / f"baseline-{self.port}.log"
        with open(self.log_path, "wb") as log:  # node writes to its own copy of the file
            self.proc = subprocess.Popen(
                [node(), str(BASELINE_DIR / "server.js"), str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_ready(self.url, self.proc, self.log_path, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("the baseline needs Node.js 20 or newer (`node` on PATH)")
    return found


def ensure_installed() -> None:
    """`npm ci` in bench/baseline once: the pinned `ws` of its package-lock.json."""
    if (BASELINE_DIR / "node_modules" / "ws" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("the baseline needs npm to install its `ws` (bench/baseline/package.json)")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=BASELINE_DIR, check=True, capture_output=True)


def load_options(load: Load, workers: int, chat_seconds: float = CHAT_SECONDS) -> list[str]:
    """The same `wrencos loadtest run` options for both sides."""
    chat_start = load.viewers / RAMP + 2.0
    return options(
        viewers=load.viewers,
        ramp=RAMP,
        chat_start=chat_start,
        duration=chat_start + chat_seconds,
        chat_rate=load.chat_rate,
        like_rate=load.like_rate,
        protocol="v1",
        workers=workers,
    )


def _measure_side(
    start: Callable[[], Any], loads: list[Load], work: Path, tag: str, workers: int, chat_seconds: float
) -> dict[Load, tuple[dict[str, Any] | None, str]]:
    """Every load against one server (started once): each load's report, or None and why not."""
    out: dict[Load, tuple[dict[str, Any] | None, str]] = {}
    try:
        server = start()
    except Exception as e:  # noqa: BLE001 - a server that does not start fails its side of this run, reported
        return {load: (None, f"did not start: {e!r}") for load in loads}
    try:
        for i, load in enumerate(loads):
            try:
                out[load] = (loadtest(server, work / f"{tag}-{i}.json", *load_options(load, workers, chat_seconds)), "")
            except Exception as e:  # noqa: BLE001 - no report from this load test: a failed run, reported
                out[load] = (None, f"no report: {e!r}")
    finally:
        server.stop()
    return out


def run_once(
    loads: list[Load],
    work: Path,
    run: int,
    results: dict[Load, dict[str, Measured]],
    workers: int,
    chat_seconds: float = CHAT_SECONDS,
) -> None:
    """One run: every load against the old stack, then every load against ours."""
    old = _measure_side(lambda: Baseline(work), loads, work, f"old-{run}", workers, chat_seconds)
    ours = _measure_side(System, loads, work, f"ours-{run}", workers, chat_seconds)
    for load in loads:
        results[load][OLD].add(*old[load])
        results[load][OURS].add(*ours[load])


def _ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v / 1000:.1f} s" if v >= 1000 else (f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms")


def _ratio(old: float | None, ours: float | None) -> str:
    if old is None or ours is None or ours <= 0:
        return "–"
    r = old / ours  # above 1: ours is faster
    return f"{r:.0f}×" if r >= 10 else f"{r:.2g}×"


def _lost(v: float | None) -> str:
    return "–" if v is None else ("none" if v == 0 else f"{v:.1f} %" if v >= 0.1 else f"{v:.2f} %")


def _side(m: Measured, runs: int) -> str:
    cell = f"{_ms(m.median(m.p50))} / {_ms(m.median(m.p99))}"
    return cell + (f" (**FAILED** {m.failed} of {runs} runs)" if m.failed else "")


def table(results: dict[Load, dict[str, Measured]], runs: int) -> str:
    """The side-by-side table (markdown): medians of the runs that were measured, failures named."""
    lines = [
        "| load (old-protocol viewers of one stream) | old stack p50 / p99 | ours p50 / p99 "
        "| old ÷ ours p50 / p99 | lost old / ours |",
        "|---|---|---|---|---|",
    ]
    for load, sides in results.items():
        old, ours = sides[OLD], sides[OURS]
        p50 = _ratio(old.median(old.p50), ours.median(ours.p50))
        ratio = f"{p50} / {_ratio(old.median(old.p99), ours.median(ours.p99))}"
        lost = f"{_lost(old.median(old.lost))} / {_lost(ours.median(ours.lost))}"
        lines.append(f"| {load.name} | {_side(old, runs)} | {_side(ours, runs)} | {ratio} | {lost} |")
    return "\n".join(lines)


def side_by_side(
    loads: list[Load],
    runs: int,
    work: Path,
    workers: int = 2,
    progress: Callable[[str], None] = print,
    chat_seconds: float = CHAT_SECONDS,
) -> dict[Load, dict[str, Measured]]:
    """Every load against both sides, `runs` times; the measurements by load and side."""
    results = {load: {OLD: Measured(), OURS: Measured()} for load in loads}
    for run in range(1, runs + 1):
        progress(f"side-by-side run {run}/{runs}: {len(loads)} loads, old stack then ours")
        run_once(loads, work, run, results, workers, chat_seconds)
    return results


def failed_runs(results: dict[Load, dict[str, Measured]]) -> int:
    return sum(m.failed for sides in results.values() for m in sides.values())


def as_json(results: dict[Load, dict[str, Measured]]) -> list[dict[str, Any]]:
    return [
        {"load": load.name, "viewers": load.viewers, "chatRate": load.chat_rate, "likeRate": load.like_rate}
        | {side: m.as_dict() for side, m in sides.items()}
        for load, sides in results.items()
    ]
