"""RSS of every long-lived process of the soak over time, and its growth in MiB per hour.

A role (`gateway-a`, `stream:<id>`, `registry`, `db`, `raylet-head`, ...) may change its process
during the run: that is what the faults do. Growth is therefore measured on the longest stretch of
one process of each role, from its first sample after `warmup_s` to its last, and only judged when
that stretch is at least `MIN_JUDGED_S` long (a shorter one extrapolates noise to an hour). Ray's
own control store (`gcs`) is reported, not judged: it is Ray's, and keeps a record of every actor
restart the faults cause."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psutil

MIB = 1024 * 1024
MIN_JUDGED_S = 600.0
REPORTED_ONLY = frozenset({"gcs"})


@dataclass
class Sample:
    t: float  # seconds since the start of the load
    pid: int
    rss_mib: float


@dataclass
class MemoryLog:
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def sample(self, t: float, pids: dict[str, int]) -> None:
        for role, pid in pids.items():
            try:
                rss = psutil.Process(pid).memory_info().rss / MIB
            except psutil.Error:
                continue
            self.samples.setdefault(role, []).append(Sample(t, pid, round(rss, 1)))

    def summary(self, warmup_s: float) -> dict[str, dict[str, Any]]:
        """Per role: RSS at start and end, the stretch measured and its growth in MiB per hour."""
        out: dict[str, dict[str, Any]] = {}
        for role, samples in self.samples.items():
            stretches: dict[int, list[Sample]] = {}
            for s in samples:
                stretches.setdefault(s.pid, []).append(s)
            best = max(stretches.values(), key=lambda ss: ss[-1].t - ss[0].t)
            measured = [s for s in best if s.t >= warmup_s] or best
            span = measured[-1].t - measured[0].t
            growth = (measured[-1].rss_mib - measured[0].rss_mib) / span * 3600 if span > 0 else 0.0
            out[role] = {
                "startMiB": samples[0].rss_mib,
                "endMiB": samples[-1].rss_mib,
                "processes": len(stretches),
                "measuredFromS": round(measured[0].t, 1),
                "measuredToS": round(measured[-1].t, 1),
                "growthMiBPerHour": round(growth, 1),
                "judged": span >= MIN_JUDGED_S and role not in REPORTED_ONLY,
            }
        return out
