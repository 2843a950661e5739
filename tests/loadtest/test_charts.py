"""The HTML report's charts, read back from the report as a browser gets it: every chart has a
title on each axis and numbered ticks, the latency axis is numbered whatever the latencies, and
the lost axis starts at 0 (no ±0.04 when nothing was lost).

The report embeds each chart as an SVG image whose text stays text, so the axes are read from
the SVG itself (matplotlib's groups: `matplotlib.axis_N` per drawn axis, `xtick_*`/`ytick_*` per
tick, the axis title the text beside the ticks)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loadtest.html import render

SVG = "{http://www.w3.org/2000/svg}"
RECORDED = Path(__file__).with_name("recorded_report.json")
NUMBER = re.compile(r"^[−-]?\d[\d,]*(\.\d+)?$")


@dataclass
class Axis:
    kind: str  # "x" or "y"
    title: str
    ticks: list[str]

    def numbers(self) -> list[float]:
        return [float(t.replace("−", "-").replace(",", "")) for t in self.ticks if NUMBER.match(t)]


def _texts(g: ET.Element) -> list[str]:
    return ["".join(t.itertext()).strip() for t in g.iter(f"{SVG}text")]


def charts(page: str) -> dict[str, list[Axis]]:
    """Every embedded chart of a report page (by its alt text): its drawn axes."""
    found: dict[str, list[Axis]] = {}
    for alt, data in re.findall(r'<img alt="([^"]+)" src="data:image/svg\+xml;base64,([^"]+)"', page):
        root = ET.fromstring(base64.b64decode(data))
        axes = []
        for g in root.iter(f"{SVG}g"):
            if not g.get("id", "").startswith("matplotlib.axis_"):
                continue
            ticks = [c for c in g if c.get("id", "").startswith(("xtick_", "ytick_"))]
            kind = "x" if ticks and ticks[0].get("id", "").startswith("xtick_") else "y"
            labels = [t for tick in ticks for t in _texts(tick) if t]
            titles = [t for c in g if c not in ticks for t in _texts(c) if t]
            axes.append(Axis(kind, " ".join(titles), labels))
        found[alt] = axes
    return found


def check_every_chart_labelled(page: str) -> dict[str, list[Axis]]:
    found = charts(page)
    assert set(found) == {"latency", "deliveries", "connections"}, list(found)
    for name, axes in found.items():
        assert [a.kind for a in axes].count("x") >= 1, (name, axes)
        assert [a.kind for a in axes].count("y") >= 1, (name, axes)
        for a in axes:
            assert a.title, f"{name}: a {a.kind} axis without a title"
            assert len(a.numbers()) >= 2, f"{name}: {a.kind} axis {a.title!r} has tick labels {a.ticks}"
    return found


def _report(series_overrides: Mapping[str, Sequence[float]] | None = None) -> dict[str, Any]:
    report = json.loads(RECORDED.read_text())
    report["series"].update(series_overrides or {})
    return report


def test_recorded_run_every_chart_has_titled_numbered_axes() -> None:
    found = check_every_chart_labelled(render(_report()))
    lost = next(a for a in found["deliveries"] if a.title == "lost receipts")
    assert min(lost.numbers()) == 0 and max(lost.numbers()) >= 1, lost.ticks  # none lost: 0 to 1, not ±0.04


@pytest.mark.parametrize("ms", [0.4, 3.0, 47.0, 180.0, 5300.0])
def test_latency_axis_is_numbered_whatever_the_latencies(ms: float) -> None:
    """A quiet stream's 47–50 ms left the old symlog axis without a single number."""
    n = len(_report()["series"]["t"])
    flat = {f"latency_{p}": [ms * f] * n for p, f in (("p50", 1.0), ("p90", 1.02), ("p99", 1.05), ("max", 1.06))}
    found = check_every_chart_labelled(render(_report(flat)))
    y = next(a for a in found["latency"] if a.kind == "y")
    numbers = y.numbers()
    assert min(numbers) <= ms and max(numbers) >= ms * 1.06, (ms, y.ticks)


def test_lost_axis_counts_what_was_lost() -> None:
    n = len(_report()["series"]["t"])
    lost = [0] * n
    lost[n // 2] = 37
    found = check_every_chart_labelled(render(_report({"lost": lost})))
    axis = next(a for a in found["deliveries"] if a.title == "lost receipts")
    assert min(axis.numbers()) == 0 and max(axis.numbers()) >= 35, axis.ticks
    assert all(v == int(v) for v in axis.numbers()), axis.ticks  # whole receipts


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Run in the page once it has loaded: each chart image's size as the browser decoded it.
SIZES_PROBE = (
    '<script>window.addEventListener("load", () => document.body.setAttribute("data-sizes", '
    '[...document.images].map(i => i.alt + ":" + i.naturalWidth + "x" + i.naturalHeight).join(",")))</script>'
)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium to render the report with (the SVG is still parsed above)")
def test_a_browser_draws_every_chart(tmp_path: Path) -> None:
    """Headless chromium opens the report and decodes each chart (an SVG it cannot read has no size)."""
    assert CHROMIUM is not None
    page = tmp_path / "report.html"
    page.write_text(render(_report()).replace("</body>", SIZES_PROBE + "</body>"), encoding="utf-8")
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    found = re.search(r'data-sizes="([^"]*)"', dom)
    assert found, dom[-2000:]
    sizes = dict(item.split(":") for item in found.group(1).split(","))
    assert set(sizes) == {"latency", "deliveries", "connections"}, sizes
    for name, size in sizes.items():
        width, height = (int(v) for v in size.split("x"))
        assert width > 300 and height > 100, (name, size)
