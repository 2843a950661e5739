"""Real processes: a gateway SIGKILLed in the middle of an order (held in
`creating` by the test-only hook `WRENCOS_TEST_ORDER_HOLD_SECONDS`) leaves its
stock taken; two other gateways sweeping at once give it back exactly once.
The same fresh gateways, which follow no stream, answer REST live numbers
right (from their cache of the actor's snapshot)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.clients import Api, login
from tests.support.databases import DatabaseServer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, Process, start_gateway
from tests.system.rest_support import admin_token, new_customer, new_product, new_stream

pytestmark = pytest.mark.system

SWEEPING = {"ORDER_CREATING_TIMEOUT_SECONDS": "3", "ORDER_SWEEP_INTERVAL_SECONDS": "0.5"}


async def stock_of(api: Api, product_id: str) -> int:
    r = await api.get(f"/products/{product_id}")
    assert r.status_code == 200, r.text
    return int(r.json()["stock"])


def returned_lines(proc: Process) -> list[dict[str, object]]:
    """The sweeper's `order_stranded_returned` log lines."""
    return [json.loads(line) for line in proc.output().splitlines() if "order_stranded_returned" in line]


async def test_a_gateway_killed_mid_order_has_its_stock_returned_exactly_once(
    ray_cluster: str, embedded_db: DatabaseServer, namespace: str, log_dir: Path, gateway_url: str
) -> None:
    # gateway_url: the session's gateway, so the stream registry runs. A database of this test's own.
    db_name = f"stranded{uuid.uuid4().hex[:8]}"
    doomed, doomed_url = start_gateway(
        ray_cluster,
        embedded_db.uri,
        namespace,
        log_dir,
        db_name=db_name,
        env_overrides={"WRENCOS_TEST_ORDER_HOLD_SECONDS": "120", "ORDER_CREATING_TIMEOUT_SECONDS": "600"},
    )
    sweepers: list[tuple[Process, str]] = []
    try:
        async with Api(doomed_url, await login(doomed_url, ADMIN_EMAIL, ADMIN_PASSWORD)) as admin:
            product = await new_product(admin, stock=10)
            customer = await new_customer(doomed_url, "stranded")
            async with httpx.AsyncClient(base_url=doomed_url, timeout=60) as http:
                placing = asyncio.create_task(
                    http.post(
                        "/orders",
                        json={"items": [{"productId": product["id"], "quantity": 3}]},
                        headers={"Authorization": f"Bearer {customer.token}"},
                    )
                )
                async with asyncio.timeout(30):  # the saga took the stock and is held before confirming
                    while await stock_of(admin, product["id"]) != 7:
                        await asyncio.sleep(0.1)
                doomed.kill()  # SIGKILL, mid-order
                with pytest.raises(httpx.HTTPError):
                    await asyncio.wait_for(placing, 30)

        for _ in range(2):  # two gateways sweeping the same database at once
            sweepers.append(
                start_gateway(ray_cluster, embedded_db.uri, namespace, log_dir, db_name=db_name, env_overrides=SWEEPING)
            )
        url = sweepers[0][1]
        async with Api(url, await login(url, ADMIN_EMAIL, ADMIN_PASSWORD)) as admin:
            async with asyncio.timeout(60):
                while await stock_of(admin, product["id"]) != 10:
                    await asyncio.sleep(0.2)
            await asyncio.sleep(3)  # several more rounds of both sweepers: nothing more comes back
            assert await stock_of(admin, product["id"]) == 10
            orders = (await admin.get("/orders", params={"limit": 100})).json()
            assert orders == []  # the stranded order was never listed and is gone
            # one log line, by one of the two sweepers, saying what came back
            logged = [line for proc, _ in sweepers for line in returned_lines(proc)]
            assert len(logged) == 1, logged
            assert logged[0]["returned"] == [[product["id"], 3]] and logged[0]["lines"] == 1
            # and ordering works as before
            async with Api(url, customer.token) as buyer:
                r = await buyer.post("/orders", json={"items": [{"productId": product["id"], "quantity": 2}]})
                assert r.status_code == 201, r.text
            assert await stock_of(admin, product["id"]) == 8
    finally:
        doomed.kill()
        for proc, _ in sweepers:
            proc.terminate()


async def test_rest_live_numbers_on_a_gateway_that_follows_no_stream(
    ray_cluster: str, embedded_db: DatabaseServer, namespace: str, log_dir: Path, gateway_url: str
) -> None:
    async with Api(gateway_url, await admin_token(gateway_url)) as admin:
        sid = await new_stream(admin, "Numbers", live=True)
        try:
            async with Api(gateway_url) as liker:
                r = await liker.post(f"/livestreams/{sid}/like", headers={"X-Session-Id": "liker-1"})
                assert r.status_code == 200 and r.json()["likes"] == 1, r.text
            proc, other = start_gateway(ray_cluster, embedded_db.uri, namespace, log_dir, db_name=embedded_db.db_name)
            try:
                async with Api(other) as anon:
                    answers = await asyncio.gather(
                        *(anon.get("/livestreams/active", params={"limit": 100}) for _ in range(20)),
                        *(anon.get(f"/livestreams/{sid}") for _ in range(20)),
                    )
                for r in answers:
                    assert r.status_code == 200, r.text
                    body = r.json()
                    stream = next(s for s in body if s["id"] == sid) if isinstance(body, list) else body
                    assert (stream["likes"], stream["likedBy"], stream["isLive"]) == (1, ["liker-1"], True)
                    assert stream["seq"] is not None  # from the actor's snapshot, not the stored record
            finally:
                proc.terminate()
        finally:
            await admin.post(f"/livestreams/{sid}/stop")
