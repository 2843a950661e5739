"""The stream registry's process killed (SIGKILL) under a real gateway: `/ready`
reports `registry` unavailable (status `degraded`, still 200: the registry is shared by every
gateway, and viewers keep watching without it) and `wrencos_dependency_up{dependency="registry"}`
drops to 0 while Ray restarts it (it is detached, `max_restarts=-1`), then both
come back on their own.

The gateway runs in a Ray namespace of its own, so the registry it creates there
is the one killed: no other test's registry goes down.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import ray

from actors.placement import REGISTRY_NAME
from actors.registry_client import RegistryClient
from tests.support.clients import Api
from tests.support.databases import DatabaseServer
from tests.support.processes import start_gateway
from tests.system.rest_support import admin_token, assert_error, new_stream

pytestmark = pytest.mark.system

READY_ANSWER_S = 8.0  # /ready's own checks are bounded at 1.5 s; slack for a busy CI machine
RECOVERY_S = 60.0
REFUSED_WITHIN_S = 12.0  # the gateway's check is 3 s; slack for a busy CI machine, well under the 20 s REST bound


def _registry_up(client: httpx.Client) -> str:
    r = client.get("/metrics")  # no METRICS_TOKEN in the tests: open
    assert r.status_code == 200, r.text
    for line in r.text.splitlines():
        if line.startswith('wrencos_dependency_up{dependency="registry"}'):
            return line.split()[-1]
    raise AssertionError("no wrencos_dependency_up series for the registry")


def _ready(client: httpx.Client) -> httpx.Response:
    began = time.monotonic()
    r = client.get("/ready")
    assert time.monotonic() - began < READY_ANSWER_S, "/ready itself must answer in bounded time"
    return r


class ReadyPoller:
    """Asks `/ready` back to back in a thread, noting each answer (the test's event loop
    meanwhile calls the registry)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.answers: list[tuple[float, int, dict[str, object]]] = []  # (when, status, body)
        self.gauge_when_down: list[str] = []  # the registry's gauge right after each answer naming it down
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            r = _ready(self.client)
            self.answers.append((time.monotonic(), r.status_code, r.json()))
            if r.json().get("registry") != "ok":  # nothing else asks /ready, so the gauge still holds this answer
                self.gauge_when_down.append(_registry_up(self.client))
            time.sleep(0.05)

    def __enter__(self) -> ReadyPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(READY_ANSWER_S + 5)


async def test_a_killed_registry_is_reported_by_ready_until_ray_brings_it_back(
    ray_cluster: str, embedded_db: DatabaseServer, log_dir: Path
) -> None:
    tag = secrets.token_hex(4)
    namespace = f"registry-outage-{tag}"
    proc, url = start_gateway(ray_cluster, embedded_db.uri, namespace, log_dir, db_name=f"registry_outage_{tag}")
    try:
        with httpx.Client(base_url=url, timeout=READY_ANSWER_S + 2) as client:
            r = _ready(client)
            assert r.status_code == 200 and r.json()["registry"] == "ok", r.text
            assert _registry_up(client) == "1.0"

            registry = RegistryClient(ray.get_actor(REGISTRY_NAME, namespace=namespace))
            first = await registry.ping_pid()
            with ReadyPoller(client) as poller:
                # Killed, and its new process killed as soon as it answers: Ray restarts it each time
                # (about 2 s here), twice, so the outage outlasts the check's own 1 s wait.
                os.kill(first, signal.SIGKILL)
                killed_at = time.monotonic()
                second = await asyncio.wait_for(registry.ping_pid(), RECOVERY_S)
                assert second != first
                os.kill(second, signal.SIGKILL)
                third = await asyncio.wait_for(registry.ping_pid(), RECOVERY_S)
                assert third not in (first, second)
                while not poller.answers or poller.answers[-1][2].get("status") != "ready":
                    assert time.monotonic() - killed_at < RECOVERY_S, f"/ready did not come back: {poller.answers[-3:]}"
                    await asyncio.sleep(0.1)
                back_at = poller.answers[-1][0]

            down = [
                (status, body) for at, status, body in poller.answers if body["registry"] != "ok" and killed_at <= at
            ]
            assert down, f"/ready never reported the registry down: {poller.answers}"
            assert all(status == 200 and b["status"] == "degraded" for status, b in down), down  # still serving
            assert all(b["registry"] == "unavailable" for _, b in down), down
            assert all(b["database"] == "ok" for _, b in down), down
            assert set(poller.gauge_when_down) == {"0.0"}, poller.gauge_when_down
            print(f"\nregistry killed twice: {len(down)} answers degraded, ready after {back_at - killed_at:.1f} s")
            assert _ready(client).json()["status"] == "ready"
            assert _registry_up(client) == "1.0"
    finally:
        proc.terminate()


async def test_a_go_live_while_the_registry_does_not_answer_is_refused_at_once_and_works_after(
    ray_cluster: str, embedded_db: DatabaseServer, log_dir: Path
) -> None:
    """The registry's process stopped (SIGSTOP: it neither answers nor dies, as while the head is
    down): an admin's go-live and stop are refused 503 `unavailable` with Retry-After within the
    gateway's short check, not after the go-live's own bound; nothing changed; once it runs again
    the same go-live succeeds."""
    tag = secrets.token_hex(4)
    namespace = f"registry-stopped-{tag}"
    proc, url = start_gateway(ray_cluster, embedded_db.uri, namespace, log_dir, db_name=f"registry_stopped_{tag}")
    try:
        async with Api(url, await admin_token(url)) as admin:
            sid = await new_stream(admin, title="while the registry sleeps")
            live_sid = await new_stream(admin, title="live already", live=True)
            registry = RegistryClient(ray.get_actor(REGISTRY_NAME, namespace=namespace))
            pid = await registry.ping_pid()
            os.kill(pid, signal.SIGSTOP)
            try:
                for path in (f"/livestreams/{sid}/start", f"/livestreams/{live_sid}/stop"):
                    began = time.monotonic()
                    r = await admin.post(path)
                    took = time.monotonic() - began
                    body = assert_error(r, 503)
                    assert body["error"] == "unavailable" and "registry" in body["message"], body
                    assert r.headers.get("Retry-After"), r.headers
                    # The check waits 3 s; the go-live's own bound is 20 s (REST) to 60 s (capacity).
                    assert took < REFUSED_WITHIN_S, f"{path} took {took:.1f} s"
            finally:
                os.kill(pid, signal.SIGCONT)
            r = await admin.get(f"/livestreams/{sid}")
            assert r.status_code == 200 and r.json()["status"] == "scheduled", r.text  # nothing half-started
            r = await admin.post(f"/livestreams/{sid}/start")
            assert r.status_code == 200 and r.json()["status"] == "live", r.text
            r = await admin.get(f"/livestreams/{live_sid}")
            assert r.json()["status"] == "live", r.text  # the refused stop stopped nothing
    finally:
        proc.terminate()
