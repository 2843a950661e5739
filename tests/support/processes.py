"""Starting the project's real processes for tests, and waiting until they serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from actors.ray_env import RAY_ENV
from persistence.embedded import free_port

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-42"
JWT_SECRET = "test-secret-" + "x" * 40
AGORA_APP_ID = "970ca35de60c44645bbae8a215061b33"
AGORA_APP_CERTIFICATE = "5cfd2fd1755d40ecb72977518be15d3b"
LOGIN_RATE_PER_MINUTE = 30
ORDER_RATE_PER_MINUTE = 60
SIGNUP_RATE_PER_MINUTE = 1000  # the suite signs up many customers from one address


class Process:
    """A child process with its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - open while the process runs; terminate() and kill() close it
        self.proc = subprocess.Popen(
            args, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()


def wait_ready(base_url: str, proc: Process, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"process exited with {proc.proc.returncode}:\n{proc.output()[-4000:]}")
        try:
            if httpx.get(f"{base_url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base_url} not ready within {timeout} s:\n{proc.output()[-4000:]}")


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MONGODB_", "WRENCOS_", "JWT_", "ADMIN_"))}
    env.update({"LOG_FORMAT": "json", "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD, **RAY_ENV})
    env.update(extra)
    return env


def start_gateway(
    ray_address: str,
    mongodb_uri: str,
    namespace: str,
    log_dir: Path,
    port: int | None = None,
    db_name: str = "wrencos",
    env_overrides: dict[str, str] | None = None,
) -> tuple[Process, str]:
    port = port or free_port()
    env = base_env(
        MONGODB_URI=mongodb_uri,
        MONGODB_DB=db_name,
        JWT_SECRET=JWT_SECRET,
        WRENCOS_NAMESPACE=namespace,
        PORT=str(port),
        HOST="127.0.0.1",
        AGORA_APP_ID=AGORA_APP_ID,
        AGORA_APP_CERTIFICATE=AGORA_APP_CERTIFICATE,
        LOGIN_RATE_PER_MINUTE=str(LOGIN_RATE_PER_MINUTE),
        ORDER_RATE_PER_MINUTE=str(ORDER_RATE_PER_MINUTE),
        SIGNUP_RATE_PER_MINUTE=str(SIGNUP_RATE_PER_MINUTE),
    )
    env.update(env_overrides or {})
    proc = Process(
        [sys.executable, "-m", "wrencos", "gateway", "--address", ray_address], env, log_dir / f"gateway-{port}.log"
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def start_system(data_dir: Path, log_path: Path, port: int | None = None) -> tuple[Process, str]:
    """`wrencos run`: the whole system, as `make run` starts it."""
    port = port or free_port()
    env = base_env(WRENCOS_DATA_DIR=str(data_dir), PORT=str(port), HOST="127.0.0.1")
    proc = Process([sys.executable, "-m", "wrencos", "run"], env, log_path)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url
