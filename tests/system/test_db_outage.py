"""A hung database (SIGSTOP of a private embedded nx-27017) costs a client a bounded
wait and a JSON 503 + Retry-After, never a 30 s hang or a plain-text 500; /ready says
which dependency is down; everything answers again once the database is back."""

from __future__ import annotations

import os
import secrets
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from persistence.embedded import EmbeddedMongo
from tests.support.processes import start_gateway

pytestmark = pytest.mark.system

DEADLINE_S = 8.0  # the database budget (5 s) plus slack for a busy CI machine
RECOVERY_S = 20.0


@pytest.fixture
def private_db(tmp_path: Path) -> Iterator[EmbeddedMongo]:
    """A database only this test uses, so stopping it never stalls the rest of the suite."""
    db = EmbeddedMongo(tmp_path / "db").start()
    yield db
    db.stop()


def _pid(db: EmbeddedMongo) -> int:
    return int((db.data_dir / "nx-27017.pid").read_text().strip())


def _metrics(client: httpx.Client) -> str:
    r = client.get("/metrics")  # no METRICS_TOKEN in the tests: open
    assert r.status_code == 200, r.text
    return r.text


def test_hung_database_answers_503_quickly_and_recovers(
    private_db: EmbeddedMongo, ray_cluster: str, log_dir: Path
) -> None:
    # A namespace of its own too: the first gateway of a namespace creates its registry, with that
    # gateway's database; in the session's namespace, a later gateway would find a registry on this one.
    namespace = f"db-outage-{secrets.token_hex(3)}"
    proc, url = start_gateway(ray_cluster, private_db.uri, namespace, log_dir, db_name="outage")
    try:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            email = f"{uuid.uuid4().hex[:8]}@example.com"
            creds = {"email": email, "password": "long-enough-1"}
            assert client.post("/auth/register", json={**creds, "name": "Dee"}).status_code in (200, 201)
            requests = [
                ("GET", "/livestreams/active", None),
                ("GET", f"/livestreams/{uuid.uuid4().hex[:24]}", None),
                ("GET", "/products", None),
                ("POST", "/auth/login", creds),
            ]
            pid = _pid(private_db)
            os.kill(pid, signal.SIGSTOP)
            try:
                for method, path, body in requests:
                    start = time.monotonic()
                    r = client.request(method, path, json=body)
                    took = time.monotonic() - start
                    print(f"under SIGSTOP: {method} {path} -> {r.status_code} in {took:.2f} s")
                    assert took < DEADLINE_S, (path, took)
                    assert r.status_code == 503, (path, r.status_code, r.text)
                    assert r.json()["status"] == 503
                    assert r.headers["Retry-After"]
                ready = client.get("/ready")  # reported, not failed: every gateway shares the database
                assert ready.status_code == 200, ready.text
                assert (ready.json()["status"], ready.json()["database"]) == ("degraded", "unavailable")
                assert 'wrencos_dependency_up{dependency="database"} 0.0' in _metrics(client)
            finally:
                os.kill(pid, signal.SIGCONT)

            deadline = time.monotonic() + RECOVERY_S
            while client.get("/ready").json()["status"] != "ready":
                assert time.monotonic() < deadline, "/ready did not come back"
                time.sleep(0.5)
            assert client.get("/livestreams/active").status_code == 200
            assert 'wrencos_dependency_up{dependency="database"} 1.0' in _metrics(client)
            assert client.get("/products").status_code == 200
            assert client.post("/auth/login", json=creds).status_code == 200
    finally:
        proc.terminate()
