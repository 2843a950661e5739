"""`wrencos run` (what `make run` starts): the whole system in one command,
stopped with SIGTERM and started again on the same data directory."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.support.clients import Api, WsClient, login, register_customer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, start_system

pytestmark = pytest.mark.system


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


async def test_stop_and_start_again_keeps_accounts_streams_and_chat(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc, url = start_system(data_dir, tmp_path / "run1.log")
    ws_url = url.replace("http://", "ws://") + "/ws"
    try:
        # It says where it listens (printed once the socket is bound; /ready may answer a moment before).
        for _ in range(100):
            if "listening on" in proc.output():
                break
            await asyncio.sleep(0.05)
        assert "listening on" in proc.output()
        admin_token = await login(url, ADMIN_EMAIL, ADMIN_PASSWORD)
        customer_token, customer = await register_customer(url, "keeper@example.com")
        async with Api(url, admin_token) as admin:
            live_id = (await admin.post("/livestreams", json={"title": "Stays live"})).json()["id"]
            ended_id = (await admin.post("/livestreams", json={"title": "Ends"})).json()["id"]
            assert (await admin.post(f"/livestreams/{live_id}/start")).status_code == 200
            assert (await admin.post(f"/livestreams/{ended_id}/start")).status_code == 200
            async with WsClient(ws_url) as viewer:
                await viewer.send({"type": "register", "sessionId": "r1", "token": customer_token, "streamId": live_id})
                await viewer.wait_type("chat_history")
                for i in range(3):
                    await viewer.send({"type": "chat_message", "message": f"m{i}", "username": "keeper"})
                await viewer.send({"type": "toggle_like", "userId": customer["id"]})
                await viewer.wait_type("chat_message", message="m2")
                await viewer.wait_for(lambda f: f.get("type") == "stream_update" and f["likes"] == 1)
                # SIGTERM while a viewer is connected: it is told the service is restarting.
                children = descendants(proc.proc.pid)
                assert children, "the system should have started child processes"
                assert proc.terminate(timeout=90) == 0
                await viewer.close()
                assert viewer.closed_code == 1012  # "service restart": the apps reconnect
            out = proc.output()
            assert "streams_stored" in out and "embedded_db_stopped" in out
            # Everything it started has stopped.
            assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    finally:
        if proc.alive():
            proc.kill()

    proc2, url2 = start_system(data_dir, tmp_path / "run2.log")
    try:
        # The JWT secret made on the first start was kept: a token from before still works.
        async with Api(url2, customer_token) as before:
            assert (await before.get("/auth/me")).json()["user"]["id"] == customer["id"]
        admin_token = await login(url2, ADMIN_EMAIL, ADMIN_PASSWORD)
        token = await login(url2, "keeper@example.com", "correct-horse-1")
        async with Api(url2, admin_token) as admin:
            live = (await admin.get(f"/livestreams/{live_id}")).json()
            assert live["status"] == "live" and live["likes"] == 1 and live["likedBy"] == [customer["id"]]
            assert live["viewerCount"] == 0  # the old gateway said its viewers left when it stopped
            assert live["chatCount"] == 3
        # The stream came back live, with its chat history, and goes on.
        async with WsClient(url2.replace("http://", "ws://") + "/") as viewer:
            await viewer.send({"type": "register", "sessionId": "r1", "token": token, "streamId": live_id})
            history = await viewer.wait_type("chat_history")
            assert [m["message"] for m in history["messages"]] == ["m0", "m1", "m2"]
            await viewer.send({"type": "chat_message", "message": "after restart"})
            msg = await viewer.wait_type("chat_message", message="after restart")
            assert msg["seq"] > max(m["seq"] for m in history["messages"])
        async with Api(url2, admin_token) as admin:
            assert (await admin.post(f"/livestreams/{ended_id}/stop")).status_code == 200
            past = (await admin.get("/livestreams/past")).json()
            assert [s["id"] for s in past] == [ended_id]
    finally:
        assert proc2.terminate(timeout=90) == 0


def test_make_run_is_wired_to_wrencos_run() -> None:
    """`make run` must start the same command this file tests."""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        ["make", "-n", "run"], cwd=root, capture_output=True, text=True, env={**os.environ, "MAKEFLAGS": ""}
    )
    assert out.returncode == 0, out.stderr
    assert "wrencos run" in out.stdout
