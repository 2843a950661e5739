"""`wrencos status` as an operator runs it, against a test's own cluster."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import base_env

STATUS_TIMEOUT_S = 120.0


def wrencos_status(address: str, namespace: str, *flags: str) -> str:
    """What `wrencos status --address ADDRESS [flags]` prints; fails the test if it exits non-zero."""
    r = subprocess.run(
        [sys.executable, "-m", "wrencos", "status", "--address", address, *flags],
        env={**base_env(), "WRENCOS_NAMESPACE": namespace},
        capture_output=True,
        text=True,
        timeout=STATUS_TIMEOUT_S,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout
