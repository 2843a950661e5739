"""A bad configuration stops `wrencos run` before anything starts: exit code 2 and one line
naming the variable, what it got and what it takes (never a traceback). Each case is a real
`python -m wrencos run` process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import base_env
from wrencos.preflight import DataDirLock

JWT_SECRET = "first-hour-secret-" + "x" * 40


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = base_env(**{"WRENCOS_DATA_DIR": str(tmp_path / "data"), "PORT": "38190", **env})
    return subprocess.run(
        [sys.executable, "-m", "wrencos", "run"],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


# Each bad value and the one line it gets (also run from a fresh clone by tests/system/test_first_hour.py).
BAD_VALUES: list[tuple[dict[str, str], str]] = [
    ({"PORT": "99999"}, "error: PORT=99999 is not valid: it should be a port number from 1 to 65535"),
    ({"PORT": "0"}, "error: PORT=0 is not valid: it should be a port number from 1 to 65535"),
    ({"PORT": "abc"}, "error: PORT=abc is not valid: it should be a port number from 1 to 65535"),
    ({"JWT_TTL_SECONDS": "-5"}, "error: JWT_TTL_SECONDS=-5 is not valid: it should be greater than 0"),
    ({"DRAIN_SECONDS": "-1"}, "error: DRAIN_SECONDS=-1 is not valid: it should be greater than or equal to 0"),
    ({"LOG_FORMAT": "yaml"}, "error: LOG_FORMAT=yaml is not valid: it should be 'auto', 'json' or 'console'"),
    (
        {"ADMIN_PASSWORD": "abc"},
        "error: ADMIN_PASSWORD=(hidden) is not valid: it should be 8 to 128 characters long (as a customer's), got 3",
    ),
]


@pytest.mark.parametrize(("env", "expected"), BAD_VALUES)
def test_a_bad_value_is_one_line_and_exit_code_2(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    result = run(tmp_path, **env)
    assert result.returncode == 2, result.stderr
    assert error_lines(result) == [expected]
    assert result.stderr.strip() == expected
    assert not (tmp_path / "data").exists()  # nothing was started, not even the data directory made


def test_two_bad_values_are_two_lines(tmp_path: Path) -> None:
    result = run(tmp_path, PORT="abc", LOG_FORMAT="yaml")
    assert result.returncode == 2
    assert [line.split("=")[0] for line in error_lines(result)] == ["error: PORT", "error: LOG_FORMAT"]


def test_a_port_in_use_is_found_before_start_up(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(tmp_path, HOST="127.0.0.1", PORT=str(port))
    assert result.returncode == 2, result.stderr
    assert error_lines(result) == [
        f"error: PORT={port} is already in use on 127.0.0.1: stop what listens there, or set PORT (or --port)"
    ]
    assert not (tmp_path / "data").exists()


def test_a_second_instance_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    lock = DataDirLock(tmp_path / "data")
    lock.acquire()  # this test process plays the first `wrencos run`
    try:
        result = run(tmp_path)
    finally:
        lock.release()
    assert result.returncode == 2, result.stderr
    assert error_lines(result) == [
        f"error: WRENCOS_DATA_DIR={tmp_path / 'data'} is in use by another wrencos (pid {os.getpid()}): "
        "stop that one, or set WRENCOS_DATA_DIR (or --data-dir) to another directory"
    ]


def test_an_unreachable_mongodb_is_waited_for_then_one_line(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = run(
        tmp_path,
        MONGODB_URI=f"mongodb://user:hunter2-password@127.0.0.1:{port}/db",
        JWT_SECRET=JWT_SECRET,
        MONGODB_WAIT_SECONDS="3",
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"waiting for MongoDB at 127.0.0.1:{port} (no answer yet; giving up after 3 s)"
    assert (
        lines[-1]
        == f"error: MONGODB_URI: no MongoDB answered at 127.0.0.1:{port} within 3 s; is it running and reachable?"
    )
    assert all(len(line) < 120 for line in lines)
    assert "hunter2" not in result.stderr
