"""What a person sees: live progress while the run goes, the summary table at the end."""

from __future__ import annotations

from typing import Any, Self

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from loadtest.html import summary_rows
from loadtest.stats import Aggregate, hist_summary


def last_second(agg: Aggregate) -> dict[str, Any]:
    """Figures of the last complete second every worker reported (for the live view)."""
    if not agg.seconds:
        return {}
    complete = sorted(s for s in agg.gauges if s >= 0)
    sec = complete[-1] if complete else max(agg.seconds)
    s = agg.seconds.get(sec)
    if s is None:
        return {}
    c = s["counters"]
    lat = hist_summary(s["hists"]["latency"])
    connected = sum(v.get("connected", 0) for v in agg.gauges.get(sec, {}).values())
    return {
        "second": sec,
        "connected": connected,
        "sent": c.get("chat_sent", 0),
        "deliveries": c.get("deliveries", 0),
        "p50": lat["p50"],
        "p99": lat["p99"],
        "errors": sum(s["errors"].values()),
    }


class LiveView:
    """A progress bar over the run and a table of the last second and the totals so far."""

    def __init__(self, console: Console, total_s: float, target_viewers: int, enabled: bool) -> None:
        self.console = console
        self.enabled = enabled
        self.target = target_viewers
        self.progress = Progress(
            TextColumn("[bold]load test"),
            BarColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task("starting", total=total_s)
        self.live: Live | None = None
        self._last_plain = -10.0

    def __enter__(self) -> Self:
        if self.enabled:
            self.live = Live(self.render(None, 0.0, ""), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def render(self, agg: Aggregate | None, elapsed: float, phase: str) -> Group:
        self.progress.update(self.task, completed=max(elapsed, 0), description=phase)
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for col in ("watching", "msgs/s", "deliveries/s", "p50 ms", "p99 ms", "conn ok/fail", "reconnects", "errors"):
            table.add_column(col, justify="right")
        if agg is not None:
            s = last_second(agg)
            t = agg.totals

            def fmt(v: float | None) -> str:
                return "–" if v is None else f"{v:,.1f}"

            table.add_row(
                f"{s.get('connected', 0):,}/{self.target:,}",
                f"{s.get('sent', 0):,}",
                f"{s.get('deliveries', 0):,}",
                fmt(s.get("p50")),
                fmt(s.get("p99")),
                f"{t['connect_ok']:,}/{t['connect_failed']:,}",
                f"{t['reconnects']:,}",
                f"{sum(agg.errors.values()):,}",
            )
        return Group(self.progress, table)

    def update(self, agg: Aggregate, elapsed: float, phase: str) -> None:
        if self.live is not None:
            self.live.update(self.render(agg, elapsed, phase))
        elif elapsed - self._last_plain >= 5:  # not a terminal (CI, logs): a plain line every 5 s
            self._last_plain = elapsed
            s = last_second(agg)
            p99 = s.get("p99")
            self.console.print(
                f"[{elapsed:6.1f}s] {phase}: watching {s.get('connected', 0)}/{self.target}, "
                f"{s.get('sent', 0)} msgs/s, {s.get('deliveries', 0)} deliveries/s, "
                f"p99 {'-' if p99 is None else f'{p99:.1f}'} ms, errors {sum(agg.errors.values())}",
                highlight=False,
            )


def print_summary(console: Console, report: dict[str, Any], paths: list[str]) -> None:
    table = Table(title=f"WrenCOS load test: {report['name']}", show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    for k, v in summary_rows(report):
        table.add_row(k, v if isinstance(v, str) else f"{v:,}" if isinstance(v, int) else str(v))
    console.print(table)
    errors = report["summary"]["errors"]
    if errors:
        et = Table(title="errors by kind", show_header=True, title_justify="left")
        et.add_column("kind")
        et.add_column("count", justify="right")
        for k, v in list(errors.items())[:15]:
            et.add_row(k, f"{v:,}")
        console.print(et)
    for a in report.get("adminActions", []):
        if a["skipped"] or not a["ok"]:
            console.print(f"[yellow]admin action {a['name']} on {a['streamId']}: {a['message']}[/]")
    for note in report.get("notes", []):
        console.print(f"[yellow]note:[/] {note}")
    if report["thresholds"]:
        tt = Table(title="thresholds", show_header=True, title_justify="left")
        for col in ("option", "limit", "measured", ""):
            tt.add_column(col)
        for v in report["thresholds"]:
            tt.add_row(
                v["threshold"],
                str(v["limit"]),
                "–" if v["actual"] is None else f"{v['actual']:.4g}",
                "[green]pass[/]" if v["ok"] else "[bold red]FAIL[/]",
            )
        console.print(tt)
    for p in paths:
        console.print(f"report: {p}")
