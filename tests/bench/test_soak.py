"""The soak, two minutes of it (`python -m bench.soak --minutes 2`): the whole system as real
processes (embedded database, a two-node Ray, two gateways) under the load tester and opted-in
apps, with every kind of fault at least once (stream actors SIGKILLed, a gateway SIGKILLed and
started again, the database restarted, the database hung with SIGSTOP, the registry SIGKILLed).

What the database holds must be exactly what was acknowledged, nothing may hang, and every
scheduled fault must have happened. The soak writes its report as JSON; this test reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak.faults import KINDS

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(420)
def test_two_minute_soak_stores_exactly_what_was_acknowledged_and_nothing_hangs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MONGODB_", "WRENCOS_"))}
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "2", "--no-live", "--out-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    print(run.stderr[-6000:])
    report = json.loads((tmp_path / "soak.json").read_text())
    checks = report["verdict"]["checks"]

    acked = checks["acked_equals_stored"]
    assert acked["acked"] > 0, "the opted-in apps got no acknowledgement at all"
    assert acked["stored"] == acked["acked"], f"acknowledged and stored chat differ: {acked}"
    assert not acked["ackedNotStored"] and not acked["storedNotAcked"] and not acked["storedTwice"], acked
    likes = checks["likes_acked_equals_stored"]
    assert likes["stored"] == likes["acked"], f"stored likes differ from the acknowledged state: {likes}"
    lt = checks["loadtest_v2_acked_within_stored"]
    assert lt["acked"] > 0 and lt["acked"] <= lt["stored"] <= lt["acked"] + lt["unacked"], lt

    assert report["apps"]["hung"] == [], "WebSocket commands got neither ack nor error in time"
    assert report["rest"]["hung"] == [], "REST probes got no answer within their timeout"
    assert checks["nothing_hung"]["unansweredAtEnd"] == 0

    faults = report["faults"]
    assert all(f["error"] is None and f["startedAtS"] is not None for f in faults), faults
    assert {f["kind"] for f in faults} == set(KINDS), "every kind of fault, at least once"

    assert report["verdict"]["passed"], report["verdict"]
    assert run.returncode == 0, "the soak exits 0 when its verdict passed"
