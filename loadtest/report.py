"""The JSON report and the threshold checks.

The report holds: the options, the summary figures (`stats.summarize`), the
per-second series (`stats.timeseries`), the admin actions and what they did,
the threshold verdicts, and `raw` (counters and encoded HdrHistograms per
second), which is what `wrencos loadtest merge` adds up across machines.
"""

from __future__ import annotations

import os
import platform
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from loadtest.config import Thresholds
from loadtest.stats import summarize, timeseries

FORMAT = "wrencos-loadtest/1"


def _get(summary: dict[str, Any], path: str) -> Any:
    cur: Any = summary
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


# (option, summary path, "max" or "min", what it means)
CHECKS: tuple[tuple[str, str, str, str], ...] = (
    ("max_p50_ms", "chat.latencyMs.p50", "max", "chat fan-out latency p50 (ms)"),
    ("max_p99_ms", "chat.latencyMs.p99", "max", "chat fan-out latency p99 (ms)"),
    ("max_loss", "chat.lossRatio", "max", "lost receipts / expected receipts"),
    ("min_connect_rate", "connections.successRate", "min", "connections that reached watching / attempts"),
    ("max_connect_p99_ms", "connections.connectMs.p99", "max", "connect-to-watching time p99 (ms)"),
    ("max_errors", "errorCount", "max", "errors of every kind"),
    ("max_reorders", "chat.reordered", "max", "events that arrived out of order"),
    ("min_deliveries_per_s", "throughput.deliveriesPerSecondMean", "min", "mean chat deliveries per second"),
)


def check_thresholds(th: Thresholds, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One verdict per threshold given. A figure that could not be measured
    (no receipts at all, say) fails its threshold: a gate must not pass on no data."""
    out = []
    for option, path, kind, what in CHECKS:
        limit = getattr(th, option)
        if limit is None:
            continue
        actual = _get(summary, path)
        if actual is None:
            ok = False
        elif kind == "max":
            ok = actual <= limit
        else:
            ok = actual >= limit
        out.append(
            {"threshold": "--" + option.replace("_", "-"), "what": what, "limit": limit, "actual": actual, "ok": ok}
        )
    return out


def build_report(
    *,
    config: dict[str, Any],
    raw: dict[str, Any],
    duration: float,
    stream_ids: list[str],
    thresholds: Thresholds,
    actions: list[dict[str, Any]],
    notes: list[str],
    sources: list[str] | None = None,
) -> dict[str, Any]:
    summary = summarize(raw, duration)
    verdicts = check_thresholds(thresholds, summary)
    return {
        "format": FORMAT,
        "name": config.get("name", "loadtest"),
        "startedAt": datetime.fromtimestamp(raw["startUnixNs"] / 1e9, UTC).isoformat(),
        "host": {"name": socket.gethostname(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "config": config,
        "streamIds": stream_ids,
        "summary": summary,
        "series": timeseries(raw),
        "adminActions": actions,
        "thresholds": verdicts,
        "passed": all(v["ok"] for v in verdicts),
        "notes": notes,
        "sources": sources or [],
        "raw": raw,
    }


def write_json(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path


def read_json(path: Path) -> dict[str, Any]:
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a wrencos loadtest report")
    return data
