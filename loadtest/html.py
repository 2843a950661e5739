"""A single self-contained HTML report: summary tables and charts
(matplotlib, drawn without pyplot) embedded as base64 SVG images, so it can
be mailed or attached to a CI run as one file. The SVG keeps its text as
text: every chart's axis titles and tick labels can be read back (the tests
do)."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

SECOND_OF_RUN = "second of the run"
# Latency ticks at 1, 2 and 5 of each decade: ms from under 1 to many seconds on one readable axis.
NICE_STEPS = (1.0, 2.0, 5.0)


def _figure() -> tuple[Figure, Any]:
    """A figure and its axes, outside pyplot: no global state, no GUI backend."""
    fig = Figure(figsize=(9, 3.2))
    return fig, fig.subplots()


def _svg(fig: Figure) -> str:
    """The figure as base64 SVG, its text kept as `<text>` (not outlines) and no date in it."""
    buf = io.BytesIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "wrencos"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return base64.b64encode(buf.getvalue()).decode()


def _nice(v: float, up: bool) -> float:
    """The nearest 1-2-5 step (…, 10, 20, 50, 100, …) at or above `v` (`up`), else at or below."""
    decade = 10.0 ** math.floor(math.log10(v))
    steps = [decade * s for s in (*NICE_STEPS, 10.0)]
    if up:
        return next(s for s in steps if s >= v * (1 - 1e-9))
    return max(s for s in steps if s <= v * (1 + 1e-9))


def latency_limits(values: list[float]) -> tuple[float, float]:
    """The latency axis's range: from the 1-2-5 step at or below the smallest value to the one at
    or above the largest, so at least two labelled ticks always show (a log axis over 47–50 ms
    would otherwise have none). (1, 10) when nothing was measured."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if not positive:
        return 1.0, 10.0
    lo, hi = _nice(min(positive), up=False), _nice(max(positive), up=True)
    return (lo, hi) if hi > lo else (lo, _nice(lo * 1.5, up=True))


def lost_limits(lost: list[int]) -> tuple[float, float]:
    """The lost axis: 0 to the most lost in a second, at least 1 (no ±0.04 axis when none was lost)."""
    return 0.0, float(max(1, *lost) if lost else 1)


def _plain(v: float, _pos: int) -> str:
    return f"{v:g}"


def plots(series: dict[str, list[Any]]) -> dict[str, str]:
    """name -> base64 SVG."""
    t = series["t"]
    out: dict[str, str] = {}
    fig, ax = _figure()
    drawn: list[float] = []
    for p, style in (("p50", "-"), ("p90", "--"), ("p99", "-"), ("max", ":")):
        # A latency of 0 ms (or none that second) has no place on a log axis: a gap in the line.
        ys = [float("nan") if v is None or v <= 0 else float(v) for v in series[f"latency_{p}"]]
        drawn += ys
        ax.plot(t, ys, style, label=p)
    ax.set_xlabel(SECOND_OF_RUN)
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Chat fan-out latency (send → receipt), per second")
    ax.set_yscale("log")
    ax.set_ylim(*latency_limits(drawn))
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=NICE_STEPS))
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", ncols=4)
    out["latency"] = _svg(fig)

    fig, ax = _figure()
    ax.plot(t, series["deliveries"], label="deliveries/s")
    ax.plot(t, series["expected"], "--", label="expected receipts (by send second)")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("receipts per second")
    ax2 = ax.twinx()
    ax2.bar(t, series["lost"], color="tab:red", alpha=0.4, label="lost (by send second)")
    ax2.set_ylim(*lost_limits(series["lost"]))
    ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_ylabel("lost receipts")
    ax.set_xlabel(SECOND_OF_RUN)
    ax.set_title("Deliveries per second")
    ax.grid(alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize="small")
    out["deliveries"] = _svg(fig)

    fig, ax = _figure()
    ax.plot(t, series["connected"], label="watching")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("viewers watching")
    ax2 = ax.twinx()
    ax2.bar(t, series["connectOk"], alpha=0.3, label="connected this second")
    ax2.bar(t, series["connectFailed"], alpha=0.6, color="tab:red", label="failed this second")
    ax2.plot(t, series["reconnects"], "k.", label="reconnects")
    ax2.set_ylim(bottom=0)
    ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_ylabel("connections per second")
    ax.set_xlabel(SECOND_OF_RUN)
    ax.set_title("Connections")
    ax.grid(alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize="small")
    out["connections"] = _svg(fig)
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return html.escape(str(v))


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def summary_rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    """The headline figures, shared by the HTML report and the terminal table."""
    s = report["summary"]
    c, ch, th, lat = s["connections"], s["chat"], s["throughput"], s["chat"]["latencyMs"]
    rate = c["successRate"]
    return [
        ("viewers (peak watching)", c["peakConnected"]),
        (
            "connections ok / attempts",
            f"{c['succeeded']:,} / {c['attempts']:,}" + (f" ({rate:.2%})" if rate is not None else ""),
        ),
        ("connect to watching p50 / p99 (ms)", f"{_fmt(c['connectMs']['p50'])} / {_fmt(c['connectMs']['p99'])}"),
        ("reconnects / unexpected closes", f"{c['reconnects']:,} / {c['unexpectedCloses']:,}"),
        ("chat messages sent", ch["sent"]),
        ("deliveries (receipts of this run's chat)", ch["deliveries"]),
        ("expected receipts / received", f"{ch['expectedReceipts']:,} / {ch['receivedExpected']:,}"),
        ("lost (ratio)", f"{ch['lost']:,} ({ch['lossRatio']:.4%})"),
        ("reordered / duplicates / seq gaps", f"{ch['reordered']:,} / {ch['duplicates']:,} / {ch['seqGapEvents']:,}"),
        (
            "latency p50 / p90 / p99 / p99.9 / max (ms)",
            " / ".join(_fmt(lat[k]) for k in ("p50", "p90", "p99", "p999", "max")),
        ),
        ("deliveries/s mean / peak", f"{_fmt(th['deliveriesPerSecondMean'])} / {_fmt(th['deliveriesPerSecondPeak'])}"),
        ("frames received", th["framesReceived"]),
        ("likes sent / stream updates", f"{s['likes']['sent']:,} / {s['likes']['streamUpdates']:,}"),
        (
            "pins sent / received, p99 (ms)",
            f"{s['pins']['sent']:,} / {s['pins']['received']:,}, {_fmt(s['pins']['latencyMs']['p99'])}",
        ),
        (
            "acks (v2) / rejected, p99 (ms)",
            f"{s['acks']['acked']:,} / {s['acks']['rejected']:,}, {_fmt(s['acks']['latencyMs']['p99'])}",
        ),
        (
            "load generator: CPU s / busiest worker %",
            f"{_fmt(s['loadGenerator']['cpuSeconds'])} / {s['loadGenerator']['maxWorkerCpuPercent']}",
        ),
        (
            "load generator: CPU µs per frame / per event",
            f"{_fmt(s['loadGenerator'].get('cpuMicrosPerFrame'))} / "
            f"{_fmt(s['loadGenerator'].get('cpuMicrosPerEvent'))}",
        ),
        ("errors", s["errorCount"]),
    ]


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}
th{background:#f4f4f4;font-weight:600}.ok{color:#080}.bad{color:#b00;font-weight:700}
img{max-width:100%;display:block;margin:1em 0}code{background:#f4f4f4;padding:1px 4px}"""


# How the report's figures are measured, as the HTML report explains them.
_HOW_MEASURED = (
    "<h2>How these are measured</h2><ul>\n"
    "<li>Latency: each chat message carries its send time (<code>time.time_ns()</code> on the sending "
    "machine); a receipt's latency is its arrival time minus that. Only this run's messages count, so "
    "clocks of other machines never enter.</li>\n"
    "<li>Expected receipts: each message × the viewers of its stream that were watching (had the stream's "
    "snapshot, connection still open) when it was sent. Lost = expected − received by those viewers "
    "before the end of the drain.</li>\n"
    "<li>Likes: expected = the count when the viewers joined + each session's taps modulo 2; observed = "
    "the count in the newest <code>stream_update</code> any viewer got. With likes sent, the viewers keep "
    "receiving after the drain until no <code>stream_update</code> has arrived for 1 s (at most "
    "<code>settle</code> s more), so the last coalesced update is in; the two must then be equal, "
    "exactly.</li>\n"
    "<li>Order: by the per-stream <code>seq</code> of every event; by each sender's message numbers where "
    "there is none.</li>\n"
    "</ul>\n"
)


def render(report: dict[str, Any]) -> str:
    imgs = plots(report["series"])
    cfg = report["config"]
    verdict = ""
    if report["thresholds"]:
        rows = "".join(
            f"<tr><td><code>{html.escape(v['threshold'])}</code></td><td>{html.escape(v['what'])}</td>"
            f"<td>{_fmt(v['limit'])}</td><td>{_fmt(v['actual'])}</td>"
            f"<td class={'ok' if v['ok'] else 'bad'}>{'pass' if v['ok'] else 'FAIL'}</td></tr>"
            for v in report["thresholds"]
        )
        verdict = (
            "<h2>Thresholds: "
            + ("<span class=ok>passed</span>" if report["passed"] else "<span class=bad>FAILED</span>")
            + "</h2><table><tr><th>option</th><th>figure</th><th>limit</th><th>measured</th><th></th></tr>"
            + rows
            + "</table>"
        )
    errors = report["summary"]["errors"]
    err_html = _table([(k, v) for k, v in errors.items()]) if errors else "<p>none</p>"
    actions = report.get("adminActions") or []
    act_html = (
        (
            "<table><tr><th>s</th><th>action</th><th>stream</th><th>result</th></tr>"
            + "".join(
                f"<tr><td>{a['at']:.1f}</td><td>{html.escape(a['name'])}</td><td>{html.escape(a['streamId'])}</td>"
                f"<td class={'ok' if a['ok'] else ('' if a['skipped'] else 'bad')}>"
                f"{html.escape(a['message'])}</td></tr>"
                for a in actions
            )
            + "</table>"
        )
        if actions
        else "<p>none</p>"
    )
    likes = report["summary"]["likes"]["streams"]
    likes_html = (
        "<table><tr><th>stream</th><th>toggles</th><th>expected likes</th><th>observed likes</th>"
        "<th>updates per viewer-second</th><th>settled after (s)</th></tr>"
        + "".join(
            f"<tr><td>{html.escape(k)}</td><td>{_fmt(v['toggles'])}</td><td>{_fmt(v['expectedLikes'])}</td>"
            f"<td>{_fmt(v['observedLikes'])}</td><td>{_fmt(v['updatesPerViewerSecond'])}</td>"
            f"<td>{_fmt(v.get('settleSeconds'))}{'' if v.get('settled', True) else ' (not settled)'}</td></tr>"
            for k, v in likes.items()
        )
        + "</table>"
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.get("notes", []))
    cfg_rows = [(k, ", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in cfg.items()]
    name = html.escape(report["name"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{name} – WrenCOS load test</title>
<style>{CSS}</style></head><body>
<h1>WrenCOS Live load test: {name}</h1>
<p>Started {html.escape(report["startedAt"])} on {html.escape(str(report["host"]["name"]))}
({report["host"]["cpus"]} CPUs). Run id <code>{html.escape(str(cfg.get("runId", "")))}</code>.</p>
{verdict}
<h2>Summary</h2>{_table(summary_rows(report))}
<h2>Latency percentiles over time</h2><img alt="latency" src="data:image/svg+xml;base64,{imgs["latency"]}">
<h2>Deliveries per second</h2><img alt="deliveries" src="data:image/svg+xml;base64,{imgs["deliveries"]}">
<h2>Connections</h2><img alt="connections" src="data:image/svg+xml;base64,{imgs["connections"]}">
<h2>Errors by kind</h2>{err_html}
<h2>Admin actions</h2>{act_html}
<h2>Likes</h2>{likes_html}
{_HOW_MEASURED}{("<h2>Notes</h2><ul>" + notes + "</ul>") if notes else ""}
<h2>Options</h2>{_table(cfg_rows)}
</body></html>"""


def write_html(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report), encoding="utf-8")
    return path
