"""Several Ray nodes on one host: the cluster design run on one machine, for
tests, benchmarks and demos.

Each node is `ray start --block` in a process group of its own, with its own
name, resources and temp dir. Killing that group with SIGKILL is the node
dying (its raylet and every worker on it go at once). A process attaches to a
given node by naming its temp dir (`WRENCOS_RAY_TEMP_DIR` for `wrencos gateway`).

The head is told to notice a dead node within about `node_timeout_s` (Ray's
health checks; the default is tens of seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.ray_env import RAY_ENV
from persistence.embedded import free_port
from wrencos.process_tree import descendants


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


@dataclass
class RayNode:
    name: str
    resources: dict[str, float]
    temp_dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    head: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """The node dies: SIGKILL, all at once, to its raylet and every process
        it started (Ray starts each worker in a session of its own, so this
        walks the process tree rather than signalling a process group)."""
        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()


class LocalCluster:
    """A Ray cluster of several nodes on this host."""

    def __init__(self, node_timeout_s: float = 3.0, env: dict[str, str] | None = None) -> None:
        # Short paths: Ray puts Unix sockets under the temp dir (107 characters at most).
        self.root = Path(tempfile.mkdtemp(prefix="wrc-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, RayNode] = {}
        period_ms = max(200, int(node_timeout_s * 1000 / 3))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
            **RAY_ENV,
            "RAY_health_check_period_ms": str(period_ms),
            "RAY_health_check_timeout_ms": str(period_ms),
            "RAY_health_check_failure_threshold": "3",
            **(env or {}),
        }
        # Every node and driver of a token-authenticated cluster needs the token (~/.ray/auth_token).
        subprocess.run(
            [_ray_bin(), "get-auth-token", "--generate"],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start_head(
        self, resources: dict[str, float], num_cpus: int = 1, extra_args: tuple[str, ...] = (), name: str = "head"
    ) -> RayNode:
        """The head, at the cluster's address; `extra_args` go to its `ray start` (an
        `--autoscaling-config=FILE`, say). A second head under another `name` replaces one that
        died (with GCS fault tolerance, it takes the cluster over)."""
        return self._start(name, resources, num_cpus, head=True, extra_args=extra_args)

    def add_node(self, name: str, resources: dict[str, float], num_cpus: int = 1) -> RayNode:
        return self._start(name, resources, num_cpus, head=False)

    def _start(
        self, name: str, resources: dict[str, float], num_cpus: int, head: bool, extra_args: tuple[str, ...] = ()
    ) -> RayNode:
        temp_dir = self.root / name
        temp_dir.mkdir()
        args = [
            _ray_bin(),
            "start",
            "--block",
            f"--node-name={name}",
            f"--num-cpus={num_cpus}",
            f"--resources={json.dumps(resources)}",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
        ]
        if head:
            args += ["--head", f"--port={self.port}", "--include-dashboard=false"]
        else:
            args += [f"--address={self.address}"]
        args += extra_args
        log_path = self.root / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                args,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        node = RayNode(name, resources, temp_dir, proc, log_path, head=head)
        self.nodes[name] = node
        self._wait_up(node)
        return node

    def _wait_up(self, node: RayNode, timeout: float = 180.0) -> None:
        """Until `ray start` says the node runs (its raylet registered with the head)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not node.alive():
                raise RuntimeError(f"Ray node {node.name} exited:\n{node.log_path.read_text()[-3000:]}")
            if "Ray runtime started" in node.log_path.read_text(errors="replace"):
                return
            time.sleep(0.3)
        raise RuntimeError(f"Ray node {node.name} did not come up:\n{node.log_path.read_text()[-3000:]}")

    def alive_node_names(self) -> list[str]:
        """Names of the nodes the cluster sees alive."""
        return list(
            json.loads(
                self.driver("import json; print(json.dumps([n['NodeName'] for n in ray.nodes() if n['Alive']]))")
            )
        )

    def driver(self, code: str, namespace: str = "wrencos", timeout: float = 180.0) -> str:
        """Run Python `code` as a short-lived driver of this cluster (`ray.init`
        done, in `namespace`); the last line it prints. Raises if it fails."""
        prelude = (
            f"import ray, logging; ray.init(address={self.address!r}, logging_level=logging.ERROR, "
            f"log_to_driver=False, namespace={namespace!r})\n"
        )
        r = subprocess.run(
            [sys.executable, "-c", prelude + code], env=self.env, capture_output=True, timeout=timeout, text=True
        )
        lines = r.stdout.strip().splitlines()
        if r.returncode != 0 or not lines:
            raise RuntimeError(f"driver failed ({r.returncode}):\n{r.stderr[-3000:]}")
        return lines[-1]

    def shutdown(self) -> None:
        for node in reversed(list(self.nodes.values())):
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)
