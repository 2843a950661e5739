"""Every `wrencos` command fails in one line, and help shows each default once."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.support.processes import base_env
from wrencos.preflight import DataDirLock


def wrencos(*args: str, timeout: float = 60.0, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wrencos", *args],
        env=base_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "error:" in line or "cannot" in line]
    assert len(errors) == 1, output
    return errors[0]


def test_status_with_no_cluster_at_the_address() -> None:
    port = closed_port()
    result = wrencos("status", "--address", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert one_line(result).startswith(f"error: no Ray cluster answers at 127.0.0.1:{port} (")


def test_gateway_with_a_wrong_address() -> None:
    port = closed_port()
    result = wrencos(
        "gateway",
        "--address",
        f"127.0.0.1:{port}",
        "--port",
        str(closed_port()),
        MONGODB_URI="mongodb://127.0.0.1:1/x",
        JWT_SECRET="first-hour-secret-" + "x" * 40,
    )
    assert result.returncode == 2
    assert one_line(result).startswith(f"error: no Ray cluster answers at 127.0.0.1:{port} (")


def test_loadtest_run_against_nothing() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = wrencos("loadtest", "run", "-g", url, "--duration", "1", "--no-live", "--admin-token", "x")
    assert result.returncode == 2
    assert one_line(result).startswith(f"error: cannot run against {url}: ")


def test_loadtest_setup_against_nothing() -> None:
    result = wrencos("loadtest", "setup", "-g", f"http://127.0.0.1:{closed_port()}", "--admin-token", "x")
    assert result.returncode == 2
    assert one_line(result).startswith("cannot set up: ")


def test_loadtest_help_shows_each_default_once() -> None:
    result = wrencos("loadtest", "run", "--help", COLUMNS="1000", ADMIN_PASSWORD="never-in-help-42")
    assert result.returncode == 0
    # One entry per option: its first line starts with "  -", its help may go on below it.
    options: list[str] = []
    for line in result.stdout.splitlines():
        if line.startswith("  -"):
            options.append(line)
        elif options and line.startswith("    "):
            options[-1] += " " + line.strip()
    assert len(options) > 30
    for entry in options:
        assert entry.count("default") <= 1, entry
    assert any(e.startswith("  --viewers VIEWERS") and "(default: 100)" in e for e in options)
    assert any(e.startswith("  --admin-email") and "default: $ADMIN_EMAIL" in e for e in options)
    assert "never-in-help-42" not in result.stdout  # a default read from the environment is not printed


def test_stream_and_viewer_commands_against_nothing() -> None:
    """Before a password is asked for: the gateway is checked first."""
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    for args in (
        ("stream", "start", "--title", "T", "--email", "a@example.com"),
        ("stream", "stop", "0123456789abcdef01234567", "--email", "a@example.com"),
        ("viewer", "0123456789abcdef01234567", "--say", "hello", "--seconds", "2"),
    ):
        result = wrencos(*args, PORT=str(port))
        assert result.returncode == 2, (args, result.stderr)
        assert one_line(result).startswith(f"error: no gateway answers at {url} ("), args
        assert "Password" not in result.stderr


def test_admin_create_while_a_run_is_starting_says_so(tmp_path: Path) -> None:
    """The data directory's lock is held (a `wrencos run` starting) and its database not yet published."""
    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        result = wrencos("admin", "create", "--email", "a@example.com", WRENCOS_DATA_DIR=str(tmp_path))
    finally:
        lock.release()
    assert result.returncode == 2
    assert one_line(result) == (
        f"error: the wrencos running on {tmp_path} has not started its database yet: try again shortly"
    )
