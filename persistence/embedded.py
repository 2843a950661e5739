"""The embedded database: an `nx-27017` server (MongoDB wire protocol on SQLite)
that the project starts and stops itself when `MONGODB_URI` is not set.

It runs as a child process on 127.0.0.1, keeps one SQLite file per logical
database under `<data_dir>/db`, and survives restarts with its data. The same
driver code talks to it over a real socket as it would to a real MongoDB.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import structlog

log = structlog.get_logger("persistence.embedded")


def _stop_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux only; elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class EmbeddedMongo:
    """One `nx-27017` server process. Use as a context manager or call
    `start()` then `stop()`; `uri` is valid between the two."""

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def start(self, timeout: float = 20.0) -> EmbeddedMongo:
        db_dir = self.data_dir / "db"
        db_dir.mkdir(parents=True, exist_ok=True)
        if _port_open(self.host, self.port):
            raise RuntimeError(
                f"port {self.port} is already in use; set WRENCOS_DB_PORT to a free port "
                "or MONGODB_URI to use a running MongoDB"
            )
        exe = shutil.which("nx-27017", path=str(Path(sys.executable).parent)) or shutil.which("nx-27017")
        cmd = [exe] if exe else [sys.executable, "-m", "nx_27017"]
        cmd += ["--data-dir", str(db_dir), "--host", self.host, "--port", str(self.port)]
        cmd += ["--log-file", str(self.data_dir / "nx-27017.log"), "--pid-file", str(self.data_dir / "nx-27017.pid")]
        # Its own session, so a Ctrl-C meant for `make run` reaches only the parent (which stores
        # the streams first, then stops this); and on Linux it is told to stop if the parent dies
        # without doing so (SIGKILL), instead of living on as an orphan holding the data files.
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_stop_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not _port_open(self.host, self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"nx-27017 exited with code {self._proc.returncode}; see {self.data_dir / 'nx-27017.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nx-27017 did not listen on port {self.port} within {timeout:.0f} s")
            time.sleep(0.05)
        log.info("embedded_db_started", port=self.port, data_dir=str(db_dir), pid=self._proc.pid)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.info("embedded_db_stopped", port=self.port)

    def kill(self) -> None:
        """Kill without a clean shutdown (for failure tests)."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
            self._proc = None

    def __enter__(self) -> EmbeddedMongo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
