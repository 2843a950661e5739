"""Fixtures for the JS client's system tests: gateways on the session's Ray and
database (so a viewer can move from one to another), and a live stream."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.clients import Api, login
from tests.support.databases import DatabaseServer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, Process, start_gateway


@pytest.fixture(scope="module")
def gateways(
    ray_cluster: str, embedded_db: DatabaseServer, namespace: str, log_dir: Path
) -> Iterator[list[tuple[Process, str]]]:
    """Gateways A, B and C (process, base URL). Tests may SIGSTOP or SIGKILL A, and drain C
    (SIGTERM: its sockets closed with 1012 within a second); B stays."""
    started = [
        start_gateway(
            ray_cluster,
            embedded_db.uri,
            namespace,
            log_dir,
            db_name=embedded_db.db_name,
            env_overrides={"DRAIN_SECONDS": "1"},
        )
        for _ in range(3)
    ]
    yield started
    for proc, _ in started:
        proc.kill()


@pytest.fixture
async def live_stream(gateways: list[tuple[Process, str]]) -> AsyncIterator[tuple[str, str]]:
    """A new live stream (other live streams stopped), and an admin token."""
    url = gateways[1][1]
    token = await login(url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(url, token) as admin:
        for s in (await admin.get("/livestreams/active")).json():
            await admin.post(f"/livestreams/{s['id']}/stop")
        sid = (await admin.post("/livestreams", json={"title": f"js-{uuid.uuid4().hex[:6]}"})).json()["id"]
        assert (await admin.post(f"/livestreams/{sid}/start")).status_code == 200
        yield sid, token
        await admin.post(f"/livestreams/{sid}/stop")
