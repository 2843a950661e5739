"""`wrencos loadtest merge a.json b.json ...`: one report from several machines.

Counters and histograms are added (percentiles of the merge are exact, from
the merged HdrHistograms). Seconds are aligned on each report's wall-clock
start, so the machines' clocks should agree (NTP) for the time series to line
up; latency itself is never compared across clocks: each machine only timed
its own messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtest.config import Thresholds
from loadtest.report import build_report, read_json
from loadtest.stats import merge_raw


def merge_reports(
    reports: list[dict[str, Any]], thresholds: Thresholds, name: str = "merged", sources: list[str] | None = None
) -> dict[str, Any]:
    raw = merge_raw(r["raw"] for r in reports)
    duration = max(float(r["summary"]["durationSeconds"]) for r in reports)
    stream_ids = sorted({s for r in reports for s in r.get("streamIds", [])})
    actions = [a for r in reports for a in r.get("adminActions", [])]
    notes = [f"{r['host']['name']} ({r['config'].get('runId')}): {n}" for r in reports for n in r.get("notes", [])]
    starts = [r["raw"]["startUnixNs"] for r in reports]
    if max(starts) - min(starts) > 5e9:
        notes.append(
            f"the runs started {(max(starts) - min(starts)) / 1e9:.1f} s apart: per-second figures overlap only partly"
        )
    config = {
        "name": name,
        "merged": len(reports),
        "runIds": [r["config"].get("runId") for r in reports],
        "hosts": [r["host"]["name"] for r in reports],
        "viewers": sum(
            int(r["config"].get("viewersPerStream", 0)) * int(r["config"].get("streams", 0)) for r in reports
        ),
    }
    return build_report(
        config=config,
        raw=raw,
        duration=duration,
        stream_ids=stream_ids,
        thresholds=thresholds,
        actions=actions,
        notes=notes,
        sources=sources,
    )


def merge_files(paths: list[Path], thresholds: Thresholds, name: str = "merged") -> dict[str, Any]:
    return merge_reports([read_json(p) for p in paths], thresholds, name, sources=[str(p) for p in paths])
