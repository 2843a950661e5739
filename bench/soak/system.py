"""The system under soak, all as real processes on this machine: the embedded database, a local
Ray of two nodes (a head that holds the registry and the gateways' seats, a stream node for the
stream actors) and two gateways (`wrencos gateway`). Everything here can be found by pid, killed
with a signal and started again, which is what the fault schedule does."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from actors.ray_env import RAY_ENV
from persistence.embedded import EmbeddedMongo, free_port
from wrencos.local_cluster import LocalCluster

ADMIN_EMAIL = "soak-admin@example.com"
ADMIN_PASSWORD = "soak-admin-password-42"
DB_NAME = "soak"
GATEWAY_READY_TIMEOUT_S = 120.0


@dataclass
class Gateway:
    """One `wrencos gateway` process on a fixed port (a restart comes back on the same port)."""

    name: str
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None


@dataclass
class SoakSystem:
    """The processes of one soak, started by `start()` and stopped by `stop()` (idempotent)."""

    work_dir: Path
    namespace: str = field(default_factory=lambda: f"soak-{secrets.token_hex(3)}")
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    db: EmbeddedMongo | None = None
    ray: LocalCluster | None = None
    gateways: list[Gateway] = field(default_factory=list)

    def start(self, gateways: int = 2) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.db = EmbeddedMongo(self.work_dir / "db").start()
        self.ray = LocalCluster(node_timeout_s=3.0)
        self.ray.start_head({"registry": 1, "gateway": 4})
        self.ray.add_node("stream", {"stream": 100})
        self.gateways = [
            Gateway(chr(ord("a") + i), free_port(), self.work_dir / f"gateway-{chr(ord('a') + i)}.log")
            for i in range(gateways)
        ]
        for gw in self.gateways:
            self._spawn(gw)
        for gw in self.gateways:
            self.wait_ready(gw)

    @property
    def db_uri(self) -> str:
        assert self.db is not None, "the database is not started"
        return self.db.uri

    def gateway_env(self, gw: Gateway) -> dict[str, str]:
        """What a gateway needs (as the system tests give it): the database, the cluster, a secret, an admin."""
        assert self.ray is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MONGODB_", "WRENCOS_", "JWT_"))}
        env.update(
            LOG_FORMAT="json",
            ADMIN_EMAIL=ADMIN_EMAIL,
            ADMIN_PASSWORD=ADMIN_PASSWORD,
            MONGODB_URI=self.db_uri,
            MONGODB_DB=DB_NAME,
            JWT_SECRET=self.jwt_secret,
            WRENCOS_NAMESPACE=self.namespace,
            WRENCOS_RAY_TEMP_DIR=str(self.ray.nodes["head"].temp_dir),
            **RAY_ENV,
            PORT=str(gw.port),
            HOST="127.0.0.1",
            AGORA_APP_ID="970ca35de60c44645bbae8a215061b33",
            AGORA_APP_CERTIFICATE="5cfd2fd1755d40ecb72977518be15d3b",
        )
        return env

    def _spawn(self, gw: Gateway) -> None:
        assert self.ray is not None
        with open(gw.log_path, "ab") as log:
            gw.proc = subprocess.Popen(
                [sys.executable, "-m", "wrencos", "gateway", "--address", self.ray.address],
                env=self.gateway_env(gw),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        gw.starts += 1

    def wait_ready(self, gw: Gateway, timeout: float = GATEWAY_READY_TIMEOUT_S) -> float:
        """Seconds until `GET /ready` answers 200; raises if the process exits or the time runs out."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if gw.proc is None or gw.proc.poll() is not None:
                tail = gw.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"gateway {gw.name} exited:\n{tail}")
            try:
                if httpx.get(f"{gw.url}/ready", timeout=2).status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gateway {gw.name} not ready within {timeout:.0f} s")

    def kill_gateway(self, gw: Gateway) -> int:
        """SIGKILL the gateway's process group (no drain, no goodbye); its pid."""
        assert gw.proc is not None
        pid = gw.proc.pid
        os.killpg(pid, signal.SIGKILL)
        gw.proc.wait()
        return pid

    def restart_gateway(self, gw: Gateway) -> float:
        """Start the gateway again on its port; seconds until it is ready."""
        self._spawn(gw)
        return self.wait_ready(gw)

    def db_pid(self) -> int:
        assert self.db is not None
        return int((self.db.data_dir / "nx-27017.pid").read_text().strip())

    def restart_db(self, down_s: float) -> None:
        """Stop the database (SIGTERM, as an operator would), stay down `down_s`, start it on the
        same port with the same data."""
        assert self.db is not None
        self.db.stop()
        time.sleep(down_s)
        self.db.start()

    def ray_pids(self) -> dict[str, int]:
        """The raylet of each node and the head's GCS server, by role."""
        assert self.ray is not None
        out: dict[str, int] = {}
        for name, node in self.ray.nodes.items():
            try:
                children = psutil.Process(node.proc.pid).children(recursive=True)
            except psutil.Error:
                continue
            for child in children:
                try:
                    exe = child.name()
                except psutil.Error:
                    continue
                if exe == "raylet":
                    out[f"raylet-{name}"] = child.pid
                elif exe == "gcs_server":
                    out["gcs"] = child.pid
        return out

    def stop(self) -> None:
        for gw in self.gateways:
            if gw.proc is not None and gw.proc.poll() is None:
                try:
                    os.killpg(gw.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                gw.proc.wait()
        if self.ray is not None:
            self.ray.shutdown()
            self.ray = None
        if self.db is not None:
            try:
                os.kill(self.db_pid(), signal.SIGCONT)  # never leave it stopped
            except (OSError, ValueError):
                pass
            self.db.stop()
            self.db = None
