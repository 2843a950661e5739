"""A go-live that finds no stream capacity is bounded: a real Ray cluster whose
only node offers one `stream` unit, a real gateway, the embedded database.

The one unit serves the first stream; the second go-live waits (its actor's
creation pends). With GO_LIVE_TIMEOUT_SECONDS=8 and a REST deadline of 9 s
(so `POST /start` waits at most 6 s): the first POST answers 202 (still
waiting), the second joins the same go-live and answers 503 `no_capacity` with
Retry-After once 8 s have passed; the stream is scheduled again and no actor
is left pending for it. Once the first stream stops, its unit goes to the
waiting spare and the second stream goes live.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clients import Api, login
from tests.support.databases import DatabaseServer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, Process, start_gateway
from wrencos.local_cluster import LocalCluster

pytestmark = pytest.mark.system

NAMESPACE = "capacity-test"
GO_LIVE_TIMEOUT_S = 8
REST_DEADLINE_S = 9


@pytest.fixture(scope="module")
def one_stream_unit(embedded_db: DatabaseServer, log_dir: Path) -> Iterator[tuple[LocalCluster, str]]:
    ray = LocalCluster()
    proc: Process | None = None
    try:
        ray.start_head({"registry": 1, "gateway": 1, "stream": 1})
        proc, url = start_gateway(
            ray.address,
            embedded_db.uri,
            NAMESPACE,
            log_dir,
            db_name="capacity_test",
            env_overrides={
                "WRENCOS_RAY_TEMP_DIR": str(ray.nodes["head"].temp_dir),
                "GO_LIVE_TIMEOUT_SECONDS": str(GO_LIVE_TIMEOUT_S),
                "REST_DEADLINE_SECONDS": str(REST_DEADLINE_S),
            },
        )
        yield ray, url
    finally:
        if proc is not None:
            proc.kill()
        ray.shutdown()


def pending_stream_actors(ray: LocalCluster, stream_id: str) -> list[str]:
    """Names of the actors created for this stream that Ray still knows (alive or pending)."""
    code = f"print(json.dumps([n for n in ray.util.list_named_actors() if n == 'stream:{stream_id}']))"
    return list(json.loads(ray.driver("import json, ray.util\n" + code, namespace=NAMESPACE)))


async def test_a_go_live_without_capacity_answers_202_then_503_and_stays_scheduled(
    one_stream_unit: tuple[LocalCluster, str],
) -> None:
    ray, url = one_stream_unit
    token = await login(url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(url, token) as admin:
        first, second = [(await admin.post("/livestreams", json={"title": t})).json()["id"] for t in ("a", "b")]
        r = await admin.post(f"/livestreams/{first}/start")
        assert r.status_code == 200, r.text  # the one unit

        began = time.monotonic()
        r = await admin.post(f"/livestreams/{second}/start")
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "going_live" and "stream` capacity" in r.json()["message"]
        assert int(r.headers["Retry-After"]) >= 1
        assert time.monotonic() - began < REST_DEADLINE_S, "answered before the REST deadline"

        r = await admin.post(f"/livestreams/{second}/start")  # joins the same go-live, until it gives up
        waited = time.monotonic() - began
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["error"] == "no_capacity", body
        assert "add stream nodes" in body["message"].lower() and "still scheduled" in body["message"], body
        assert int(r.headers["Retry-After"]) > 0
        assert GO_LIVE_TIMEOUT_S - 1 <= waited < GO_LIVE_TIMEOUT_S + REST_DEADLINE_S, waited

        record = (await admin.get(f"/livestreams/{second}")).json()
        assert record["status"] == "scheduled" and not record["isLive"] and record["startTime"] is None, record
        assert second not in [s["id"] for s in (await admin.get("/livestreams/active")).json()]
        assert pending_stream_actors(ray, second) == [], "the actor it was creating is gone"

        # Capacity comes back (the first stream ends): the second goes live.
        assert (await admin.post(f"/livestreams/{first}/stop")).status_code == 200
        deadline = time.monotonic() + 60
        while True:
            r = await admin.post(f"/livestreams/{second}/start")
            if r.status_code == 200:
                break
            assert r.status_code in (202, 503) and time.monotonic() < deadline, r.text
        assert r.json()["isLive"]
