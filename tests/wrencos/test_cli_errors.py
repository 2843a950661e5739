"""Every `wrencos` command fails in one line, and help shows each default once."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.support.processes import base_env


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
