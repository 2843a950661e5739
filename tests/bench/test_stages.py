"""`bench.stages`: per-stage milliseconds read back from debug log lines, as the system writes them."""

from __future__ import annotations

import json
import math

from bench.stages import percentile, stages


def _line(prefix: str, **entry: object) -> str:
    return prefix + json.dumps(entry)


def test_each_stage_is_read_from_its_event_and_the_poll_is_matched_by_stream_and_seq() -> None:
    lines = [
        _line("", event="submit_stages", outbox_ms=0.5, round_trip_ms=5.0),
        _line(
            "(StreamActor pid=1) ",  # Ray's prefix on actor lines
            event="commit_stages",
            stream_id="s1",
            commands=2,
            last_seq=7,
            queued_ms=0.1,
            apply_ms=0.2,
            journal_ms=1.5,
            published_at=100.000,
        ),
        _line("", event="commit_stages", stream_id="s1", commands=0, last_seq=None, queued_ms=None),  # empty: skipped
        _line("", event="poll_received", stream_id="s1", last_seq=7, received_at=100.0025),
        _line("", event="poll_received", stream_id="s2", last_seq=7, received_at=100.5),  # another stream: no match
        _line("", event="fanout_stages", written_ms=1.0),
        "not json at all {",
        "plain text line",
    ]
    rows = stages(lines)
    assert rows["gateway in"] == [0.5] and rows["submit round trip"] == [5.0]
    assert rows["actor queue"] == [0.1] and rows["apply"] == [0.2] and rows["journal write"] == [1.5]
    assert len(rows["poll"]) == 1 and math.isclose(rows["poll"][0], 2.5, abs_tol=1e-6)
    assert rows["socket write"] == [1.0]


def test_percentile_is_the_nearest_rank_and_nan_when_empty() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 100.0
    assert percentile([3.0, 1.0, 2.0], 0.0) == 1.0
    assert math.isnan(percentile([], 0.5))
