"""Scheduled streams go live on the actor reserved for them ahead of time, and
a moved or cancelled stream's reserved actor ends. A real gateway (REST), the
real registry and stream actors on the session's Ray, the embedded database.

"Served by the reserved actor" is checked by identity: the process id of the
actor the registry reserved before the go-live is the one serving the stream
after it (its `info`), not by timing."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.call_policy import ActorCallError
from actors.placement import REGISTRY_NAME
from actors.registry_client import RegistryClient
from actors.stream_client import StreamClient
from persistence.database import DatabaseConfig, connect
from runtime.clock import iso
from tests.support.clients import Api, login
from tests.support.databases import DatabaseServer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, start_gateway

pytestmark = pytest.mark.system

RESERVE_S = 120.0  # five actor processes started on a busy 2-core machine
GO_LIVE_S = 10.0  # a go-live on a reserved actor answers in well under a second; this is only the backstop


def soon(seconds: float) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=seconds))


async def scheduled(
    admin: Api, registry: RegistryClient, title: str, count: int, in_s: float
) -> tuple[list[str], dict[str, Any], dict[str, int]]:
    """`count` streams scheduled `in_s` seconds from now, once each has its actor reserved: their
    ids, each one's reserved actor, and that actor's process id."""
    at = soon(in_s)
    ids = [
        (await admin.post("/livestreams", json={"title": f"{title} {i}", "scheduledAt": at})).json()["id"]
        for i in range(count)
    ]
    reserved = await reserved_for(registry, ids)
    return ids, reserved, {sid: int((await StreamClient(h, None).info())["pid"]) for sid, h in reserved.items()}


async def reserved_for(registry: RegistryClient, ids: list[str], timeout: float = RESERVE_S) -> dict[str, Any]:
    """The actors reserved for every one of `ids`, once they all are."""
    deadline = time.monotonic() + timeout
    while True:
        reserved = {k: v for k, v in (await registry.prewarmed()).items() if k in ids}
        if len(reserved) == len(ids):
            return reserved
        assert time.monotonic() < deadline, f"only {len(reserved)} of {len(ids)} reserved after {timeout:g} s"
        await asyncio.sleep(0.5)


async def released(registry: RegistryClient, stream_id: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while stream_id in await registry.prewarmed():
        assert time.monotonic() < deadline, f"the actor reserved for {stream_id} was not released"
        await asyncio.sleep(0.2)


async def ended(handle: Any, timeout: float = 30.0) -> bool:
    """Whether the actor has ended for good (its calls answer `gone`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await StreamClient(handle, None).info(timeout_s=5.0)
        except ActorCallError as e:
            if e.code == "gone":
                return True
        await asyncio.sleep(0.5)
    return False


async def test_scheduled_streams_go_live_on_the_actor_reserved_for_them(gateway_url: str, namespace: str) -> None:
    registry = RegistryClient(ray.get_actor(REGISTRY_NAME, namespace=namespace))
    token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(gateway_url, token) as admin:
        ids, _, pids = await scheduled(admin, registry, "show", 5, in_s=60)
        # Edited after its actor loaded it ahead: the go-live serves the edit.
        assert (await admin.put(f"/livestreams/{ids[0]}", json={"title": "show 0, edited"})).status_code == 200
        pressed: dict[str, str] = {}
        for sid in ids:
            began = time.monotonic()
            pressed[sid] = iso(datetime.now(UTC))
            r = await admin.post(f"/livestreams/{sid}/start")
            took = time.monotonic() - began
            assert r.status_code == 200 and r.json()["isLive"], r.text
            assert took < GO_LIVE_S, f"going live on a reserved actor took {took:.1f} s"
            assert r.json()["startTime"] >= pressed[sid], "the go-live's time, not the reservation's"
        live = await registry.live()
        for sid in ids:
            info = await StreamClient(live.actors[sid], sid).info()
            assert info["pid"] == pids[sid], "served by the actor reserved for it"
            assert info["streamId"] == sid and info["loaded"]
            shown = await StreamClient(live.actors[sid], sid).snapshot()
            assert shown["streamData"]["startTime"] >= pressed[sid]
            announcement = {k: v for k, v in live.live[sid].items() if k not in ("seq", "epoch")}
            assert announcement == shown["streamData"], "announced as the actor serves it"
            assert (live.live[sid]["seq"], live.live[sid]["epoch"]) == (shown["seq"], shown["epoch"])
        assert live.live[ids[0]]["title"] == "show 0, edited"
        assert not set(ids) & set(await registry.prewarmed()), "a reservation is used once"
        for sid in ids:
            assert (await admin.post(f"/livestreams/{sid}/stop")).status_code == 200


async def test_a_moved_or_cancelled_stream_releases_its_reserved_actor(
    gateway_url: str, namespace: str, embedded_db: DatabaseServer
) -> None:
    registry = RegistryClient(ray.get_actor(REGISTRY_NAME, namespace=namespace))
    token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(gateway_url, token) as admin:
        at = soon(60)
        moved, cancelled = [
            (await admin.post("/livestreams", json={"title": t, "scheduledAt": at})).json()["id"]
            for t in ("moved", "cancelled")
        ]
        reserved = await reserved_for(registry, [moved, cancelled])

        assert (await admin.put(f"/livestreams/{moved}", json={"scheduledAt": soon(86_400)})).status_code == 200
        assert (await admin.delete(f"/livestreams/{cancelled}")).status_code == 204
        await released(registry, moved)
        await released(registry, cancelled)
        assert await ended(reserved[moved]) and await ended(reserved[cancelled]), "released actors end"
        db = connect(DatabaseConfig(uri=embedded_db.uri, name=embedded_db.db_name))
        try:  # their assignments (they had prepared the streams) are released with them
            deadline = time.monotonic() + 10
            while await db.stream_slots.count_documents({"streamId": {"$in": [moved, cancelled]}}):
                assert time.monotonic() < deadline, "a released actor's assignment is still stored"
                await asyncio.sleep(0.2)
        finally:
            await db.client.close()

        # Moved back into its window: reserved again (a new actor), and it goes live on it.
        assert (await admin.put(f"/livestreams/{moved}", json={"scheduledAt": soon(30)})).status_code == 200
        again = (await reserved_for(registry, [moved]))[moved]
        pid = (await StreamClient(again, None).info())["pid"]
        assert (await admin.post(f"/livestreams/{moved}/start")).status_code == 200
        actor = (await registry.live()).actors[moved]
        assert (await StreamClient(actor, moved).info())["pid"] == pid
        assert (await admin.post(f"/livestreams/{moved}/stop")).status_code == 200


async def test_reservations_are_made_again_after_the_registry_restarts(
    ray_cluster: str, embedded_db: DatabaseServer, log_dir: Path
) -> None:
    """The registry's process killed (SIGKILL) while it holds reservations
    (actors that loaded their stream ahead, not live): Ray restarts it, and it
    reserves the same actors again, while the one of a stream deleted behind
    its back meanwhile ends, its assignment released: nothing is left
    half-adopted (a gateway and registry of their own: the session's stay up)."""
    tag = secrets.token_hex(4)
    namespace = f"golive-restart-{tag}"
    db_name = f"golive_restart_{tag}"
    proc, url = start_gateway(ray_cluster, embedded_db.uri, namespace, log_dir, db_name=db_name)
    db = connect(DatabaseConfig(uri=embedded_db.uri, name=db_name))
    try:
        registry = RegistryClient(ray.get_actor(REGISTRY_NAME, namespace=namespace))
        token = await login(url, ADMIN_EMAIL, ADMIN_PASSWORD)
        async with Api(url, token) as admin:
            ids, before, pids = await scheduled(admin, registry, "restart", 3, in_s=90)
            kept, deleted = ids[:2], ids[2]
            assert await db.stream_slots.count_documents({"streamId": {"$in": ids}, "live": False}) == 3
            first = await registry.ping_pid()
            os.kill(first, signal.SIGKILL)
            await db.streams.delete_one({"_id": deleted})  # behind its back, while it is down
            deadline = time.monotonic() + 60
            while True:
                try:
                    if await registry.ping_pid() != first:
                        break
                except ActorCallError:
                    pass
                assert time.monotonic() < deadline, "the registry did not come back"
                await asyncio.sleep(0.5)
            reserved = await reserved_for(registry, kept)
            for sid in kept:
                assert (await StreamClient(reserved[sid], None).info())["pid"] == pids[sid], "the same actor, again"
            assert await ended(before[deleted]), "the deleted stream's actor ends"
            deadline = time.monotonic() + 30
            while await db.stream_slots.count_documents({"streamId": deleted}):
                assert time.monotonic() < deadline, "the deleted stream's assignment was not released"
                await asyncio.sleep(0.5)
            for sid in kept:
                pressed = iso(datetime.now(UTC))
                r = await admin.post(f"/livestreams/{sid}/start")
                assert r.status_code == 200 and r.json()["startTime"] >= pressed, r.text
            live = await registry.live()
            for sid in kept:
                assert (await StreamClient(live.actors[sid], sid).info())["pid"] == pids[sid]
                assert (await admin.post(f"/livestreams/{sid}/stop")).status_code == 200
    finally:
        await db.client.close()
        proc.terminate()
