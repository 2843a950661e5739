"""The soak, one minute of it (`python -m bench.soak --minutes 1`): the whole system as real
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

from bench.soak.faults import KINDS, schedule
from bench.soak.verdict import judge

ROOT = Path(__file__).resolve().parents[2]
# One minute holds the whole schedule (eight faults of every kind, about every 6 s, the database hung 6 s)
# and the checks below; `make soak` is the long run. Two minutes here cost `make test` a minute more.
SOAK_MINUTES = 1


@pytest.mark.parametrize("minutes", [SOAK_MINUTES, 2, 20])
def test_the_schedule_has_every_kind_of_fault_spread_over_the_run(minutes: float) -> None:
    faults = schedule(minutes * 60, ["s1", "s2", "audit"], ["a", "b"])
    assert {f.kind for f in faults} == set(KINDS)
    times = [f.at_s for f in faults]
    assert times == sorted(times) and times[0] > 0 and times[-1] <= 0.85 * minutes * 60
    assert all(0 < f.hold_s <= 30 for f in faults if f.kind == "db_hang")
    assert {f.target for f in faults if f.kind == "actor_kill"} <= {"s1", "s2", "audit"}


def test_the_verdict_fails_on_a_message_acknowledged_but_not_stored_or_stored_twice() -> None:
    def verdict(acked: list[str], stored: list[str]) -> bool:
        figures = {"auditChat": stored, "auditLikes": 1, "loadtestStored": {}}
        return bool(judge(acked, 1, figures, {}, 0, 0, [{"error": None, "startedAtS": 1.0}], {})["passed"])

    assert verdict(["soak a 1", "soak a 2"], ["soak a 1", "soak a 2"])
    assert not verdict(["soak a 1", "soak a 2"], ["soak a 1"])
    assert not verdict(["soak a 1"], ["soak a 1", "soak a 1"])
    assert not verdict(["soak a 1"], ["soak a 1", "soak a 2"])
    assert not verdict([], [])


@pytest.mark.system
@pytest.mark.timeout(420)
def test_a_short_soak_stores_exactly_what_was_acknowledged_and_nothing_hangs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MONGODB_", "WRENCOS_"))}
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", str(SOAK_MINUTES), "--no-live", "--out-dir", str(tmp_path)],
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
