"""The benchmark's side-by-side table and its honesty rules (#18 item 4, #16 item 6).

The system test runs the real thing at a tiny scale: the old stack (`node
bench/baseline/server.js`) and ours (`wrencos run`), the same load tester
against both, and reads the table. The others check, without servers, that a
failed run is shown as failed (never dropped from a median) and that the
README's copy is replaced between its markers only."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from bench import side_by_side as sbs
from bench.readme import END, START, replace_between_markers
from bench.run import SCENARIOS, Figure, run_scenario

NUMBER_MS = r"\d[\d,.]*(?: ms| s)"


@pytest.mark.system
def test_old_stack_and_ours_side_by_side_at_a_tiny_scale(tmp_path: Path) -> None:
    started = time.monotonic()
    load = sbs.Load(20, 5)
    results = sbs.side_by_side([load], runs=1, work=tmp_path, workers=1, progress=lambda _: None, chat_seconds=4)
    assert sbs.failed_runs(results) == 0, {s: m.failures for s, m in results[load].items()}
    for side in (sbs.OLD, sbs.OURS):
        measured = results[load][side]
        assert measured.p50[0] is not None and measured.p99[0] is not None, side
        assert 0 < measured.p50[0] <= measured.p99[0] < 5000, (side, measured)
        assert measured.lost == [0.0], (side, measured.lost)  # 20 viewers, 5 messages a second: nothing lost
    row = sbs.table(results, 1).splitlines()[2]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "20 viewers, 5 chat/s"
    for cell in cells[1:3]:  # old stack p50 / p99, ours p50 / p99: numbers both
        assert re.fullmatch(f"{NUMBER_MS} / {NUMBER_MS}", cell), cells
    assert re.fullmatch(r"\d[\d.]*× / \d[\d.]*×", cells[3]), cells  # measured ratios
    assert cells[4] == "none / none", cells
    assert time.monotonic() - started < 180


def test_a_failed_side_is_shown_failed_and_not_hidden_in_the_median() -> None:
    load = sbs.Load(100, 10)
    old, ours = sbs.Measured(), sbs.Measured()
    report = {"summary": {"chat": {"latencyMs": {"p50": 2.0, "p99": 5.0}, "lost": 0, "expectedReceipts": 100}}}
    old.add(report)
    old.add(report)
    ours.add({"summary": {"chat": {"latencyMs": {"p50": 40.0, "p99": 50.0}, "lost": 5, "expectedReceipts": 100}}})
    ours.add(None, "did not start")
    row = sbs.table({load: {sbs.OLD: old, sbs.OURS: ours}}, 2).splitlines()[2]
    assert "2.0 ms / 5.0 ms |" in row and "FAILED** 1 of 2 runs" in row, row
    assert "0.05× / 0.1×" in row and "none / 5.0 %" in row, row
    assert sbs.failed_runs({load: {sbs.OLD: old, sbs.OURS: ours}}) == 1


def test_a_run_that_raises_counts_as_failed_with_no_figures_of_its_own(tmp_path: Path) -> None:
    calls = []

    def scenario(run: int, work: Path, figures: dict[str, Figure]) -> None:
        calls.append(run)
        figures["a"].values.append(10.0 * run)
        if run == 2:
            raise RuntimeError("the system did not start")
        figures["b"].values.append(1.0)

    figures = [Figure("a", "≤ 100", "ms", "lower", 100), Figure("b", "measured", "", "lower", None)]
    SCENARIOS["test-failing"] = (scenario, figures)
    try:
        run_scenario("test-failing", 3, tmp_path)
    finally:
        del SCENARIOS["test-failing"]
    assert calls == [1, 2, 3]
    assert figures[0].values == [10.0, None, 30.0] and figures[1].values == [1.0, None, 1.0]
    assert figures[0].failed == 1 and figures[0].median == 20.0
    assert figures[0].met is False and figures[1].met is False  # within target, but a run failed


def test_readme_tables_are_replaced_between_the_markers_only() -> None:
    readme = f"# title\n\nbefore\n{START}\nold table\n{END}\nafter\n"
    out = replace_between_markers(readme, "Commit abc1234.\n\n| new | table |\n")
    assert out == f"# title\n\nbefore\n{START}\nCommit abc1234.\n\n| new | table |\n{END}\nafter\n"
    with pytest.raises(ValueError, match="markers"):
        replace_between_markers("no markers here", "x")
