"""Where a message's milliseconds go, per stage, from a `LOG_LEVEL=debug LOG_FORMAT=json wrencos run` log.

    .venv/bin/python -m bench.stages path/to/system.log

At debug level the stream actor logs `commit_stages` per commit, the relay `submit_stages` per batch
and `poll_received` per poll, and the hub `fanout_stages` per write (nothing is measured otherwise).
This prints p50 / p90 / p99 in milliseconds for each stage, and how many samples each had.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..1); NaN when there is nothing."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


def stages(lines: Iterable[str]) -> dict[str, list[float]]:
    """Milliseconds per stage, from the log's JSON lines (Ray prefixes actor lines: the JSON starts at `{`)."""
    rows: dict[str, list[float]] = {
        name: [] for name in ("gateway in", "submit round trip", "actor queue", "apply", "journal write")
    }
    written: list[float] = []
    published: dict[tuple[str, int], float] = {}
    received: dict[tuple[str, int], float] = {}
    for line in lines:
        start = line.find("{")
        if start < 0:
            continue
        try:
            entry = json.loads(line[start:])
        except ValueError:
            continue
        event = entry.get("event")
        if event == "submit_stages":
            rows["gateway in"].append(entry["outbox_ms"])
            rows["submit round trip"].append(entry["round_trip_ms"])
        elif event == "commit_stages" and entry.get("commands"):
            rows["actor queue"].append(entry["queued_ms"])
            rows["apply"].append(entry["apply_ms"])
            rows["journal write"].append(entry["journal_ms"])
            if entry.get("last_seq") is not None:
                published[(entry["stream_id"], entry["last_seq"])] = entry["published_at"]
        elif event == "poll_received":
            received[(entry["stream_id"], entry["last_seq"])] = entry["received_at"]
        elif event == "fanout_stages":
            written.append(entry["written_ms"])
    rows["poll"] = [1000 * (received[key] - at) for key, at in published.items() if key in received]
    rows["socket write"] = written
    return rows


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.stages SYSTEM_LOG (a LOG_LEVEL=debug LOG_FORMAT=json wrencos run log)")
        return 2
    with open(args[0], errors="replace") as log:
        rows = stages(log)
    for name, values in rows.items():
        p50, p90, p99 = (percentile(values, q) for q in (0.5, 0.9, 0.99))
        print(f"{name:18} p50 {p50:7.1f}  p90 {p90:7.1f}  p99 {p99:7.1f} ms  ({len(values)} samples)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
