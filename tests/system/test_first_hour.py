"""The first hour of a newcomer: `wrencos run` interrupted at any moment leaves nothing behind,
and `/docs` needs nothing outside the gateway.

Each case is a real `python -m wrencos run` (embedded database, local Ray, a gateway) in a
session of its own. Every process it starts inherits a marker in its environment, so after it
exits the test scans /proc for anything still carrying that marker (Ray's agents included, which
would have been re-parented to PID 1)."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from persistence.embedded import free_port
from tests.support.processes import Process, base_env, wait_ready

pytestmark = pytest.mark.system

EXIT_TIMEOUT_S = 90.0
SURVIVOR_GRACE_S = 15.0


def start_run(tmp_path: Path, **extra: str) -> tuple[Process, str, int]:
    marker = f"first-hour-{uuid.uuid4().hex}"
    port = free_port()
    env = base_env(
        WRENCOS_DATA_DIR=str(tmp_path / "data"),
        PORT=str(port),
        HOST="127.0.0.1",
        FIRST_HOUR_MARKER=marker,
        **extra,
    )
    proc = Process([sys.executable, "-m", "wrencos", "run"], env, tmp_path / "run.log")
    return proc, marker, port


def carrying(marker: str) -> list[str]:
    """`pid cmdline` of every process whose environment holds `marker`."""
    needle = f"FIRST_HOUR_MARKER={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z":
            found.append(f"{entry.name} {cmdline[:120]}")
    return found


def survivors(marker: str) -> list[str]:
    deadline = time.monotonic() + SURVIVOR_GRACE_S
    left = carrying(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = carrying(marker)
    return left


def kill_leftovers(marker: str) -> None:
    for line in carrying(marker):
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize(("after_s", "how"), [(0.5, "ctrl-c"), (2.0, "ctrl-c"), (4.0, "ctrl-c"), (4.0, "sigterm")])
def test_interrupted_start_up_leaves_nothing_behind(tmp_path: Path, after_s: float, how: str) -> None:
    proc, marker, _ = start_run(tmp_path)
    try:
        time.sleep(after_s)
        assert carrying(marker), "the run started no process at all"
        if how == "ctrl-c":
            os.killpg(proc.proc.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
        else:
            proc.proc.send_signal(signal.SIGTERM)  # what a service manager does: the main process
        proc.proc.wait(EXIT_TIMEOUT_S)
        assert survivors(marker) == [], proc.output()[-3000:]
    finally:
        kill_leftovers(marker)
        proc.kill()


def test_docs_offline_console_logs_then_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    proc, marker, port = start_run(tmp_path, LOG_FORMAT="console")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        page = httpx.get(f"{base}/docs", timeout=10)
        assert page.status_code == 200 and "SwaggerUIBundle" in page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert len(assets) >= 2 and all(a.startswith("/docs/assets/") for a in assets), assets
        assert "://" not in page.text.replace(base, "")  # nothing from another host
        for asset in assets:
            r = httpx.get(base + asset, timeout=10)
            assert r.status_code == 200 and len(r.content) > 500, asset
        schema = httpx.get(f"{base}/openapi.json", timeout=10).json()
        assert schema["info"]["title"] == "WrenCOS Live"
        os.killpg(proc.proc.pid, signal.SIGINT)
        assert proc.proc.wait(EXIT_TIMEOUT_S) == 0, proc.output()[-3000:]
        assert survivors(marker) == [], proc.output()[-3000:]
        # LOG_FORMAT=console into a file: one format (the actors' lines too), and no colour codes.
        log = proc.output()
        assert "\x1b[" not in log
        assert "(StreamRegistry" in log  # an actor's line, forwarded by Ray
        assert not [line for line in log.splitlines() if '"event":' in line]
    finally:
        kill_leftovers(marker)
        proc.kill()
