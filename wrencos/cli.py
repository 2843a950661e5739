"""`wrencos`: the command line.

Commands:
    wrencos run                       the whole system on this machine (what `make run` does)
    wrencos gateway --address HOST:PORT --port 3001
                                      one more gateway joining a running Ray cluster
    wrencos status --address HOST:PORT [--json]
                                      nodes, gateways and live streams of a cluster, and where each runs
    wrencos admin create --email E [--name N] [--password-stdin]
                                      an admin account, straight into the database (the first step)
    wrencos stream start --title T --email E [--password-stdin]
    wrencos stream stop STREAM_ID --email E [--password-stdin]
                                      an admin starts or stops a stream through the running gateway
    wrencos viewer STREAM_ID [--say TEXT] [--seconds N] [--email E | --name N]
                                      watch a stream (and chat) from a terminal, as a customer's app does
    wrencos loadtest run|merge|setup  the load tester

Each fails in one line (`error: ...`) and exits 2 when it cannot run (a bad setting, nothing
answering), 1 when it ran and was refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from actors.ray_env import apply_ray_env
from runtime.settings import ConfigError, Settings, load_settings
from wrencos.command_errors import CommandError


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
    add_first_steps_parsers(sub)
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

    if args.command in FIRST_STEPS:
        try:
            return run_first_step(args, settings)
        except CommandError as e:
            print(f"error: {e}", file=sys.stderr)
            return e.exit_code
        except KeyboardInterrupt:
            return 130

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


FIRST_STEPS = ("admin", "stream", "viewer")
PASSWORD_STDIN_HELP = "read the password from the first line of standard input (for scripts); else it is asked"


def add_first_steps_parsers(sub: Any) -> None:
    """`admin create`, `stream start|stop` and `viewer`: what a newcomer does first."""
    admin = sub.add_parser("admin", help="admin accounts").add_subparsers(dest="action", required=True)
    create = admin.add_parser(
        "create",
        help="create an admin account in the database (or make an existing account an admin)",
        description="Writes the account straight to the database `wrencos run` uses (works while it runs, "
        "or on its own). The password is asked twice, or read from standard input.",
    )
    create.add_argument("--email", required=True)
    create.add_argument("--name", default="Admin", help="the name the admin's chat messages carry (default: Admin)")
    create.add_argument("--password-stdin", action="store_true", help=PASSWORD_STDIN_HELP)

    stream = sub.add_parser("stream", help="start or stop a stream (as an admin, through the gateway)")
    actions = stream.add_subparsers(dest="action", required=True)
    start = actions.add_parser("start", help="create a stream and start it; prints its id")
    start.add_argument("--title", required=True)
    start.add_argument("--description", default="", help="(default: none)")
    stop = actions.add_parser("stop", help="stop a live stream")
    stop.add_argument("stream_id", metavar="STREAM_ID")
    for p in (start, stop):
        p.add_argument("--email", required=True, help="an admin's email")
        p.add_argument("--password-stdin", action="store_true", help=PASSWORD_STDIN_HELP)
        p.add_argument("--gateway", help="the gateway's URL (default: http://127.0.0.1:$PORT, PORT 3000 unless set)")

    viewer = sub.add_parser("viewer", help="watch a stream from the terminal, one line per event")
    viewer.add_argument("stream_id", metavar="STREAM_ID")
    viewer.add_argument("--say", metavar="TEXT", help="send this chat message once registered")
    viewer.add_argument("--seconds", type=float, help="stop after this many seconds (default: at Ctrl-C)")
    who = viewer.add_mutually_exclusive_group()
    who.add_argument("--email", help="log in as this account (default: watch as a guest)")
    who.add_argument("--name", help="a guest's chat name (default: Guest)")
    viewer.add_argument("--password-stdin", action="store_true", help=PASSWORD_STDIN_HELP)
    viewer.add_argument("--gateway", help="the gateway's URL (default: http://127.0.0.1:$PORT, PORT 3000 unless set)")


def run_first_step(args: argparse.Namespace, settings: Settings) -> int:
    """One of `FIRST_STEPS`; raises CommandError (printed as one line by `main`)."""
    import asyncio

    from runtime.logs import configure
    from wrencos import gateway_api, passwords

    configure("warning", settings.log_format)  # a command's output is its answer, not the info lines of what it ran
    if args.command == "admin":
        from wrencos.admin_accounts import create_admin

        def new_password() -> str:
            return passwords.read_password(
                f"Password for {args.email} (8 to 128 characters): ", from_stdin=args.password_stdin, confirm=True
            )

        print(create_admin(settings, args.email, args.name, new_password))
        return 0
    api = gateway_api.GatewayApi(args.gateway or gateway_api.default_gateway(settings))
    api.check()
    if args.command == "stream":
        from wrencos import stream_commands

        password = passwords.read_password(f"Password for {args.email}: ", from_stdin=args.password_stdin)
        stream_commands.log_in_as_admin(api, args.email, password)
        if args.action == "stop":
            stream_commands.stop_stream(api, args.stream_id)
            print(f"stream {args.stream_id} stopped", file=sys.stderr)
            return 0
        stream_id = stream_commands.start_stream(api, args.title, args.description)
        print(stream_id, flush=True)  # alone on standard output: STREAM=$(wrencos stream start ...)
        print(
            f"stream {stream_id} is live: {api.base}/livestreams/{stream_id} "
            f"(watch it: .venv/bin/wrencos viewer {stream_id})",
            file=sys.stderr,
        )
        return 0
    from wrencos.viewer import watch

    token = None
    if args.email:
        api.login(args.email, passwords.read_password(f"Password for {args.email}: ", from_stdin=args.password_stdin))
        token = api.token
    return asyncio.run(
        watch(
            gateway_api.websocket_url(api.base),
            args.stream_id,
            token=token,
            name=args.name,
            say=args.say,
            seconds=args.seconds,
            out=lambda line: print(line, flush=True),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
