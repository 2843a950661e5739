"""`wrencos`: the command line.

Commands:
    wrencos run                       the whole system on this machine (what `make run` does)
    wrencos gateway --address HOST:PORT --port 3001
                                      one more gateway joining a running Ray cluster
    wrencos status --address HOST:PORT [--json]
                                      nodes, gateways and live streams of a cluster, and where each runs
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from actors.ray_env import apply_ray_env
from runtime.settings import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wrencos", description="WrenCOS Live: realtime backend for live shopping")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the database, Ray and a gateway on this machine")
    run.add_argument("--port", type=int, help="HTTP and WebSocket port (default: $PORT or 3000)")
    run.add_argument(
        "--data-dir", help="where the embedded database and secrets live (default: $WRENCOS_DATA_DIR or ./data)"
    )
    gw = sub.add_parser("gateway", help="start a gateway that joins a running Ray cluster")
    gw.add_argument("--address", help="the Ray cluster's address, HOST:PORT (default: $RAY_ADDRESS or auto)")
    gw.add_argument("--port", type=int, help="HTTP and WebSocket port (default: $PORT or 3000)")
    st = sub.add_parser("status", help="show the nodes, gateways and live streams of a running cluster")
    st.add_argument("--address", help="the Ray cluster's address, HOST:PORT (default: $RAY_ADDRESS or auto)")
    st.add_argument("--json", action="store_true", help="one JSON object instead of text")
    from loadtest.cli import add_parser as add_loadtest_parser, run_command as run_loadtest

    add_loadtest_parser(sub)  # `wrencos loadtest run|merge|setup`: the load tester (package loadtest/)
    args = parser.parse_args(argv)
    if args.command == "loadtest":
        return run_loadtest(args)

    overrides: dict[str, Any] = {}
    if getattr(args, "port", None):
        overrides["PORT"] = args.port
    if getattr(args, "data_dir", None):
        overrides["WRENCOS_DATA_DIR"] = args.data_dir
    try:
        settings = load_settings(**overrides)
    except ConfigError as e:
        for line in str(e).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2

    # The environment every Ray process of ours runs with (token authentication, no per-call task
    # events in the head's memory): Ray reads part of it when it is imported, and the local Ray that
    # `run` starts inherits it, hence here, before `system` imports Ray.
    apply_ray_env(os.environ)
    from wrencos import system

    if args.command == "run":
        return system.run_system(settings)
    if args.command == "status":
        return system.show_status(settings, args.address, args.json)
    return system.run_gateway(settings, args.address)


if __name__ == "__main__":
    sys.exit(main())
