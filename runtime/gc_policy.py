"""Garbage collection in our long-running processes: what startup made is frozen; pauses are measured.

Why: CPython's collector stops the event loop while it runs, and a full
collection walks every object the process tracks. A gateway tracks a great
many: Ray's, FastAPI's and pydantic's modules and schemas from startup, then
the objects of every connection. Measured in a like storm (1,000 viewers,
20,000 taps a second), the collections set off by the storm's first second
stopped the gateway for long enough to put chat p99 at 2-3x its calm value.

* `freeze_startup()` collects once, then moves everything still alive into
  the permanent generation (`gc.freeze()`): never scanned again, never freed
  (it lives as long as the process anyway). Call it once the gateway has
  started, before the first connection (a stream actor and a load-test
  worker do the same when they start).
* `GC_THRESHOLDS`: a young generation of 10,000 allocations instead of 700:
  fewer young collections, so fewer short-lived objects (a frame's dict, a
  command in flight) survive into the older generations by being caught
  mid-life, and fewer full collections follow.
* `GcPauses` times every collection (`gc.callbacks`) into a Prometheus
  histogram by generation, so the pauses are seen in production
  (`wrencos_gc_pause_seconds`).
"""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a stream actor uses only `freeze_startup`: its process does without prometheus_client
    from prometheus_client import CollectorRegistry

GC_THRESHOLDS = (10_000, 10, 10)
PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def freeze_startup(collect: bool = True) -> int:
    """Collect (unless `collect` is False), freeze what is left, set
    `GC_THRESHOLDS`. Returns the objects frozen. The collection costs about
    30 ms after importing Ray and frees next to nothing there (5 objects,
    measured), so a stream actor, whose start is on the go-live path, skips it."""
    if collect:
        gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return gc.get_freeze_count()


class GcPauses:
    """Every collection's pause, by generation, while installed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Histogram  # here, not at the top: see the import above

        self.seconds = Histogram(
            "wrencos_gc_pause_seconds",
            "Garbage collection pauses of this gateway process, by generation",
            ["generation"],
            buckets=PAUSE_BUCKETS,
            registry=registry,
        )
        self._by_generation = [self.seconds.labels(str(g)) for g in range(3)]
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._started)

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
