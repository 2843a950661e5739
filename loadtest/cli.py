"""The `wrencos loadtest` command line. Only argparse here: the heavy
imports (rich, matplotlib, numpy) happen when a subcommand runs, so
`wrencos run` works without the `loadtest` extra installed.

    wrencos loadtest run   --gateway URL [--gateway URL2 ...] --streams 2 --viewers 500 ...
    wrencos loadtest merge a.json b.json --json all.json --html all.html
    wrencos loadtest setup --gateway URL --streams 4     (create and start streams; prints their ids)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def _ratio(text: str) -> float:
    """`0.001` or `0.1%`."""
    text = text.strip()
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def _action(text: str) -> tuple[str, float]:
    name, sep, at = text.partition("@")
    if not sep:
        raise argparse.ArgumentTypeError("an action is NAME@SECONDS, e.g. pin@10")
    return name, float(at)


class _DefaultsOnceFormatter(argparse.HelpFormatter):
    """Each option's default shown once: appended as "(default: X)" unless its help already
    says "default:" (those name an environment variable too), and never for "no default"."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default:" in text or "%(default)" in text or action.default in (None, [], False, argparse.SUPPRESS):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text


def _add_thresholds(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("thresholds (any one missed: exit code 1)")
    g.add_argument("--max-p50-ms", type=float, help="chat fan-out latency p50 at most this")
    g.add_argument("--max-p99-ms", type=float, help="chat fan-out latency p99 at most this")
    g.add_argument("--max-loss", type=_ratio, help="lost/expected receipts at most this (0.001 or 0.1%%)")
    g.add_argument("--min-connect-rate", type=_ratio, help="connections that got to watching / attempts, at least")
    g.add_argument("--max-connect-p99-ms", type=float, help="connect-to-watching p99 at most this")
    g.add_argument("--max-errors", type=int, help="errors of every kind, at most this many")
    g.add_argument("--max-reorders", type=int, help="out-of-order events, at most this many")
    g.add_argument("--min-deliveries-per-s", type=float, help="mean chat deliveries per second, at least")


def _add_gateways(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gateway",
        "-g",
        action="append",
        dest="gateways",
        metavar="URL",
        help="a gateway (http://host:port or ws://host:port/); repeat for several, viewers spread "
        "round-robin; the first one is used for REST and the admin (default: http://127.0.0.1:3000)",
    )
    p.add_argument("--admin-email", default=os.environ.get("ADMIN_EMAIL"), help="default: $ADMIN_EMAIL")
    p.add_argument("--admin-password", default=os.environ.get("ADMIN_PASSWORD"), help="default: $ADMIN_PASSWORD")
    p.add_argument(
        "--admin-token",
        default=os.environ.get("WRENCOS_ADMIN_TOKEN"),
        help="an admin JWT instead of email and password (default: $WRENCOS_ADMIN_TOKEN)",
    )


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add `loadtest` (with `run`, `merge`, `setup`) to the `wrencos` subcommands."""
    lt = sub.add_parser(
        "loadtest",
        help="simulate viewers against gateways and measure them",
        description="Simulate viewers against one or more gateways and measure connections, "
        "fan-out latency, deliveries, loss, order and errors, per second.",
    )
    lsub = lt.add_subparsers(dest="loadtest_command", required=True)

    r = lsub.add_parser("run", help="run a load test", formatter_class=_DefaultsOnceFormatter)
    _add_gateways(r)
    w = r.add_argument_group("load")
    w.add_argument("--streams", type=int, default=1, help="streams to create (ignored with --stream-id)")
    w.add_argument(
        "--stream-id",
        action="append",
        default=[],
        dest="stream_ids",
        metavar="ID",
        help="join this live stream instead of creating streams (repeat for several)",
    )
    w.add_argument("--viewers", type=int, default=100, help="viewers per stream")
    w.add_argument("--ramp", type=float, default=500.0, help="new viewers per second, all streams (0: all at once)")
    w.add_argument("--duration", type=float, default=30.0, help="seconds of sending, from the start of the ramp")
    w.add_argument("--drain", type=float, default=3.0, help="seconds to keep receiving after the last send")
    w.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="with likes: at most this many seconds more after the drain, until no stream_update has "
        "arrived for 1 s, so like counts are compared once the stream has settled",
    )
    w.add_argument("--chat-rate", type=float, default=5.0, help="chat messages per second per stream")
    w.add_argument(
        "--chat-start",
        type=float,
        default=0.0,
        help="second of the run at which chat and likes begin (e.g. after the ramp)",
    )
    w.add_argument("--like-rate", type=float, default=0.0, help="like toggles per second per stream")
    w.add_argument("--message-bytes", type=int, default=0, help="pad chat messages to this length (max 500)")
    w.add_argument(
        "--protocol",
        choices=["v1", "v2", "1", "2"],
        default="v1",
        help="v1: the old apps' protocol; v2: the opted-in one (batches, acks, resume)",
    )
    w.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    w.add_argument("--connect-timeout", type=float, default=10.0, help="seconds from connect to watching")
    w.add_argument("--max-reconnects", type=int, default=5, help="failed reconnects in a row before a viewer gives up")
    w.add_argument("--connect-concurrency", type=int, default=200, help="handshakes in flight per worker")
    a = r.add_argument_group("admin actions during the run")
    a.add_argument(
        "--pin-every", type=float, default=0.0, help="pin a new product on every stream every N s (0: never)"
    )
    a.add_argument(
        "--flash-sale-at",
        type=float,
        action="append",
        default=[],
        metavar="S",
        help="start a flash sale at second S (skipped if the server answers 404)",
    )
    a.add_argument(
        "--flash-sale-path", default="/livestreams/{stream_id}/flash-sales", help="REST path of the flash-sale endpoint"
    )
    a.add_argument("--stop-at", type=float, help="stop every stream at second S")
    a.add_argument(
        "--action",
        type=_action,
        action="append",
        default=[],
        dest="actions",
        metavar="NAME@S",
        help="any registered admin action (pin, flash-sale, stop, ...) at second S",
    )
    a.add_argument("--keep-streams", action="store_true", help="do not stop the streams this run created")
    o = r.add_argument_group("output")
    o.add_argument("--name", default="loadtest", help="name of the run (titles, file names)")
    o.add_argument("--out-dir", type=Path, default=Path("loadtest-results"), help="where reports go")
    o.add_argument("--json", type=Path, dest="json_path", help="JSON report path (default: OUT_DIR/NAME-RUNID.json)")
    o.add_argument("--html", type=Path, dest="html_path", help="HTML report path (default: OUT_DIR/NAME-RUNID.html)")
    o.add_argument("--no-live", action="store_true", help="no live display (plain progress lines instead)")
    _add_thresholds(r)

    m = lsub.add_parser("merge", help="merge JSON reports of several machines into one")
    m.add_argument("reports", nargs="+", type=Path)
    m.add_argument("--name", default="merged")
    m.add_argument("--json", type=Path, dest="json_path", default=Path("loadtest-results/merged.json"))
    m.add_argument("--html", type=Path, dest="html_path", default=Path("loadtest-results/merged.html"))
    _add_thresholds(m)

    s = lsub.add_parser("setup", help="create and start streams for runs on several machines; prints their ids")
    _add_gateways(s)
    s.add_argument("--streams", type=int, default=1)
    s.add_argument("--name", default="loadtest")
    return lt


def _thresholds(args: argparse.Namespace) -> Any:
    from loadtest.config import Thresholds

    return Thresholds(
        max_p50_ms=args.max_p50_ms,
        max_p99_ms=args.max_p99_ms,
        max_loss=args.max_loss,
        min_connect_rate=args.min_connect_rate,
        max_connect_p99_ms=args.max_connect_p99_ms,
        max_errors=args.max_errors,
        max_reorders=args.max_reorders,
        min_deliveries_per_s=args.min_deliveries_per_s,
    )


def config_from_args(args: argparse.Namespace) -> Any:
    from loadtest.config import Gateway, LoadConfig

    return LoadConfig(
        gateways=[Gateway.parse(u) for u in (args.gateways or ["http://127.0.0.1:3000"])],
        streams=args.streams,
        viewers=args.viewers,
        stream_ids=args.stream_ids,
        ramp=args.ramp,
        duration=args.duration,
        drain=args.drain,
        settle=args.settle,
        chat_rate=args.chat_rate,
        chat_start=args.chat_start,
        like_rate=args.like_rate,
        message_bytes=min(args.message_bytes, 500),
        protocol=int(args.protocol.lstrip("v")),
        workers=args.workers,
        pin_every=args.pin_every,
        flash_sale_at=args.flash_sale_at,
        flash_sale_path=args.flash_sale_path,
        stop_at=args.stop_at,
        actions=args.actions,
        admin_email=args.admin_email,
        admin_password=args.admin_password,
        admin_token=args.admin_token,
        keep_streams=args.keep_streams,
        out_dir=args.out_dir,
        json_path=args.json_path,
        html_path=args.html_path,
        name=args.name,
        connect_timeout=args.connect_timeout,
        max_reconnects=args.max_reconnects,
        connect_concurrency=args.connect_concurrency,
        live=not args.no_live,
        thresholds=_thresholds(args),
    )


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed `wrencos loadtest ...` command; the process exit code."""
    from rich.console import Console

    console = Console(stderr=True)
    if args.loadtest_command == "run":
        import httpx

        from loadtest.admin import SetupError
        from loadtest.runner import run

        config = config_from_args(args)
        try:
            return run(config, console)
        except (SetupError, httpx.HTTPError, OSError) as e:
            # One line, not a traceback: most often no gateway listens at the address given.
            reason = str(e) or type(e).__name__
            console.print(f"[bold red]error:[/] cannot run against {config.gateways[0].http}: {reason}", soft_wrap=True)
            return 2
    if args.loadtest_command == "merge":
        from loadtest.console import print_summary
        from loadtest.html import write_html
        from loadtest.merge import merge_files
        from loadtest.report import write_json

        report = merge_files(args.reports, _thresholds(args), args.name)
        write_json(report, args.json_path)
        write_html(report, args.html_path)
        print_summary(console, report, [str(args.json_path), str(args.html_path)])
        return 0 if report["passed"] else 1
    if args.loadtest_command == "setup":
        import asyncio

        from loadtest import admin
        from loadtest.config import Gateway

        gws = [Gateway.parse(u) for u in (args.gateways or ["http://127.0.0.1:3000"])]

        async def setup() -> list[str]:
            token = args.admin_token or await admin.login(gws[0], args.admin_email or "", args.admin_password or "")
            ids = await admin.create_streams(gws[0], token, args.streams, args.name)
            await admin.wait_live(gws, ids)
            return ids

        import httpx

        try:
            ids = asyncio.run(setup())
        except (admin.SetupError, httpx.HTTPError, OSError) as e:
            console.print(f"[bold red]cannot set up:[/] {str(e) or type(e).__name__}", soft_wrap=True)
            return 2
        print(" ".join(f"--stream-id {i}" for i in ids))
        return 0
    raise SystemExit(f"unknown loadtest command {args.loadtest_command}")


def main(argv: list[str] | None = None) -> int:
    """`python -m loadtest ...` without the rest of `wrencos`."""
    parser = argparse.ArgumentParser(prog="loadtest")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return run_command(parser.parse_args(["loadtest", *(argv if argv is not None else __import__("sys").argv[1:])]))
