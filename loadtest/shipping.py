"""What a worker process ships to its parent, over one multiprocessing queue.

A worker sends `Ticks` about once a second (its closed seconds, with its CPU
use and connected viewers as gauges), then exactly one `Final` when it ends
normally, or a `Crash` if its event loop died. Every message is a small
picklable named type; the figures inside are plain data (`stats.Tick`,
`WorkerEnd`), the raw report's form, so the parent merges them as they are.
A worker whose process dies without a word sends nothing more: the parent
notices that the process is gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypedDict

from loadtest.stats import SecondRecorder, Tick


class Window(NamedTuple):
    """A viewer's watching window, `time.time_ns()` of the worker's machine: from its
    stream's snapshot to the end of the connection (loss counts what was sent inside)."""

    start: int
    end: int


class StreamEnd(TypedDict):
    """One stream's like figures of one worker at its end (the raw report's `streams` form)."""

    toggles: int
    likedSessions: int
    updates: int
    lastLikes: int | None
    lastLikesSeq: int
    initialLikes: int | None
    viewerSeconds: float
    lastViewerCount: int | None
    settleSeconds: float | None
    settled: bool


class WorkerEnd(TypedDict):
    """What a worker knows only at its end (`stats.Aggregate.add_final` merges it)."""

    windows: dict[str, list[Window]]
    streams: dict[str, StreamEnd]
    unacked: int  # v2 chat messages never acknowledged
    batches: int  # v2 batch frames received, over all viewers


@dataclass(frozen=True, slots=True)
class Ticks:
    """Closed seconds of worker `worker`."""

    worker: int
    ticks: list[Tick]


@dataclass(frozen=True, slots=True)
class Final:
    """Worker `worker` ended normally; nothing follows."""

    worker: int
    end: WorkerEnd


@dataclass(frozen=True, slots=True)
class Crash:
    """Worker `worker` died of `error` (the exception's type and text); nothing follows."""

    worker: int
    error: str


WorkerMessage = Ticks | Final | Crash


class Outbox(Protocol):
    """Where a worker's messages go: a multiprocessing queue (a `queue.Queue` in tests)."""

    def put(self, obj: Any, /) -> None: ...


class Shipper:
    """Ships one worker's measurements to its parent.

    `tick` closes the seconds before now in the recorder and sends them, with
    the worker's CPU since the last tick counted in whole milliseconds (the
    rest is counted next time, so the total is exact) and the busiest share of
    a core as a gauge. Call it about once a second, then `tick(final=True)`
    once, then `final`."""

    def __init__(self, worker: int, rec: SecondRecorder, out: Outbox) -> None:
        self.worker = worker
        self.rec = rec
        self.out = out
        self._cpu = time.process_time()
        self._wall = time.monotonic()
        self._cpu_counted = self._cpu

    def tick(self, connected: int, final: bool = False) -> None:
        """Ship the closed seconds (every second, if `final`) with `connected` viewers as a gauge."""
        cpu, wall = time.process_time(), time.monotonic()
        busy = (cpu - self._cpu) / max(wall - self._wall, 1e-3)
        ms = int((cpu - self._cpu_counted) * 1000)  # whole milliseconds; the rest is counted next time
        self._cpu_counted += ms / 1000
        self.rec.count(time.time_ns(), "worker_cpu_ms", ms)
        self._cpu, self._wall = cpu, wall
        gauges = {"connected": connected, "cpuPercent": round(100 * busy)}
        ticks = self.rec.flush(None if final else time.time_ns(), gauges)
        if ticks:
            self.out.put(Ticks(self.worker, ticks))

    def final(self, end: WorkerEnd) -> None:
        """Ship the worker's end: the last message it sends."""
        self.out.put(Final(self.worker, end))
