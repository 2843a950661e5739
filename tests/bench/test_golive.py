"""The go-live benchmark's stage table: read from the registry's log lines
(`go_live_stages`, JSON after Ray's prefix), only the streams measured, and
printed p50 / p99 per stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.golive import percentile, report_stages, stage_lines


def line(stream_id: str, total_ms: float, **more: object) -> str:
    entry = {"event": "go_live_stages", "stream_id": stream_id, "lock_ms": 0.0, "mark_ms": 2.0, "group": 3}
    return "(StreamRegistry pid=1) " + json.dumps({**entry, "total_ms": total_ms, "path": "prepared", **more})


def test_the_stages_of_the_streams_measured_are_read_and_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "worker-x-01000000-1234.err"
    log.write_text(
        "\n".join(
            [
                "not json at all",
                line("a", 10.0),
                json.dumps({"event": "stream_live", "stream_id": "a"}),
                line("b", 30.0, actor_ms=1.5),
                line("other", 999.0),
                '{"event": "go_live_stages", "stream_id": "c", broken',
            ]
        )
    )
    entries = stage_lines(log, ["a", "b", "c"])
    assert [e["stream_id"] for e in entries] == ["a", "b"]
    assert stage_lines(None, ["a"]) == []

    report_stages(entries)
    out = capsys.readouterr().out
    assert "2 go-lives, actor path: prepared" in out
    total = next(row for row in out.splitlines() if "all in" in row)
    assert "10.0 /" in total and "30.0 ms" in total
    assert "999" not in out
    assert next(row for row in out.splitlines() if "sharing" in row).endswith("3.0")  # a count, no unit
    assert any("actor's call" in row and "1.5 /      1.5 ms" in row for row in out.splitlines())


def test_percentile_takes_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 51.0 and percentile(values, 99) == 99.0 and percentile([5.0], 99) == 5.0
