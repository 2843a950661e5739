"""Checks made before anything starts, each failing with one line that says what to change.

- the HTTP port is free (found before the database and Ray start, not after);
- no other `wrencos run` uses the data directory (a lock held for the whole run);
- an external MongoDB answers (waited for, saying so every few seconds, within a stated time).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from runtime.settings import ConfigError

LOCK_NAME = "wrencos.lock"
MONGODB_NOTICE_EVERY_S = 5.0


def check_port_free(host: str, port: int) -> None:
    """Raise ConfigError if nothing can listen on `host:port` (in use, or not this machine's address).
    Binds as uvicorn will (SO_REUSEADDR), then lets go at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"PORT={port} is already in use on {host}: stop what listens there, or set PORT (or --port)"
                ) from None
            raise ConfigError(f"HOST={host} PORT={port} cannot be listened on: {e.strerror}") from None


def check_reachable(address: str, timeout_s: float) -> None:
    """Raise ConnectionError unless `HOST:PORT` (a `ray://` prefix allowed) accepts a TCP
    connection within `timeout_s`."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"an address is HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ConnectionError(f"nothing accepts connections there ({e.strerror or type(e).__name__})") from None


class DataDirLock:
    """An exclusive lock on the data directory for as long as this process runs it: a second
    `wrencos run` on the same directory is refused, naming the pid that holds it. The kernel
    lets go of the lock when the holder exits, however it exits, so a crash never leaves a
    stale lock behind (the pid written in the file is only for the message)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held open for the whole run: the lock is the open file
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise ConfigError(
                f"WRENCOS_DATA_DIR={self.path.parent} is in use by another wrencos (pid {holder}): "
                "stop that one, or set WRENCOS_DATA_DIR (or --data-dir) to another directory"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing lets go of the lock
            self._file = None


def mongodb_host(uri: str) -> str:
    """The hosts of a MongoDB URI, without its user and password (for messages)."""
    try:
        netloc = urlsplit(uri).netloc
    except ValueError:
        return "(an unreadable MONGODB_URI)"
    return netloc.rpartition("@")[2] or "(no host)"


def wait_for_mongodb(
    uri: str,
    ping: Callable[[], bool],
    say: Callable[[str], None],
    timeout_s: float,
    every_s: float = MONGODB_NOTICE_EVERY_S,
) -> None:
    """Call `ping` (which returns within a few seconds) until it answers True; every `every_s`
    say "waiting for MongoDB at HOST (...)". Raise ConfigError after `timeout_s`."""
    host = mongodb_host(uri)
    start = time.monotonic()
    next_notice = start
    while not ping():
        now = time.monotonic()
        if now - start >= timeout_s:
            raise ConfigError(
                f"MONGODB_URI: no MongoDB answered at {host} within {timeout_s:g} s; is it running and reachable?"
            )
        if now >= next_notice:
            say(f"waiting for MongoDB at {host} (no answer yet; giving up after {timeout_s:g} s)")
            next_notice = now + every_s
        time.sleep(min(1.0, every_s))
