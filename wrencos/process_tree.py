"""Every process `wrencos run` starts stops with it, whenever it is interrupted.

Ray's start-up spawns processes that outlive their parents when interrupted half-way
(`ray::DashboardAgent`, `ray::RuntimeEnvAgent` under a raylet killed by the same Ctrl-C).
This process becomes a child subreaper (Linux `prctl`), so every orphan below it is
re-parented to it instead of PID 1; on the way out, whatever still runs below it is
sent SIGTERM and, after a grace period, SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path
from types import FrameType

PR_SET_CHILD_SUBREAPER = 36
TERM_GRACE_S = 3.0


def become_subreaper() -> bool:
    """Orphans below this process come back to it rather than to PID 1. False where unsupported."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def stop_descendants(grace_s: float = TERM_GRACE_S) -> int:
    """SIGTERM every process still below this one, SIGKILL those left after `grace_s`, and
    reap them. The number of processes that had to be stopped."""
    me = os.getpid()
    left = descendants(me)
    for pid in left:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while left and time.monotonic() < deadline:
        _reap()
        time.sleep(0.1)
        left = [p for p in left if _alive(p)]
    for pid in descendants(me):
        _signal(pid, signal.SIGKILL)
    _reap()
    return len(left)


def raise_on_sigterm() -> None:
    """SIGTERM interrupts start-up the way Ctrl-C does (KeyboardInterrupt), so the `finally`
    blocks that stop what was started run. (Python's default for SIGTERM is to die at once.)"""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _reap() -> None:
    """Collect exited children (re-parented orphans among them), so none stays a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
