"""A fault injected into a stream actor's commit, end to end: Ray, the embedded
database, a gateway process and a WebSocket client over real sockets.

The gateway runs in a namespace and database of its own with the test-only
commit fault hook on (`ActorConfig.fault_inject_commit`, set through the
gateway's environment), so no other test's stream meets it.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from actors.config import FAULT_INJECT_COMMIT_ENV
from actors.stream_stores import StreamStores
from persistence.database import DatabaseConfig, connect
from tests.support.clients import Api, WsClient, login
from tests.support.databases import DatabaseServer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, start_gateway

pytestmark = pytest.mark.system

MARKER = "FAULT-IN-COMMIT"


async def test_a_commit_that_raises_answers_an_error_frame_and_the_next_chat_is_acked_and_stored(
    ray_cluster: str, embedded_db: DatabaseServer, log_dir: Path
) -> None:
    tag = secrets.token_hex(4)
    db_name = f"faults_{tag}"
    proc, url = start_gateway(
        ray_cluster,
        embedded_db.uri,
        f"faults-{tag}",
        log_dir,
        db_name=db_name,
        env_overrides={FAULT_INJECT_COMMIT_ENV: MARKER},
    )
    try:
        admin_token = await login(url, ADMIN_EMAIL, ADMIN_PASSWORD)
        async with Api(url, admin_token) as admin:
            r = await admin.post("/livestreams", json={"title": "Faults", "description": "a commit raises"})
            assert r.status_code == 201, r.text
            sid = str(r.json()["id"])
            r = await admin.post(f"/livestreams/{sid}/start")
            assert r.status_code == 200, r.text
            async with WsClient(url.replace("http://", "ws://") + "/") as viewer:
                await viewer.send({"type": "register", "sessionId": "f-1", "streamId": sid})
                await viewer.wait_type("chat_history", timeout=20.0)
                await viewer.send(
                    {"type": "chat_message", "message": f"{MARKER} lost", "username": "ann", "clientMsgId": "c1"}
                )
                error = await viewer.wait_type("error", timeout=15.0, clientMsgId="c1")
                assert error["code"] == "internal" and error["retryAfter"] == 1, error

                await viewer.send(
                    {"type": "chat_message", "message": "after the fault", "username": "ann", "clientMsgId": "c2"}
                )
                await viewer.wait_type("ack", timeout=15.0, clientMsgId="c2")
                await viewer.wait_type("chat_message", timeout=15.0, message="after the fault")
            r = await admin.post(f"/livestreams/{sid}/stop")
            assert r.status_code == 200, r.text

        db = connect(DatabaseConfig(uri=embedded_db.uri, name=db_name))
        try:
            stored = await StreamStores.on(db).chat.all_in_order(sid)
        finally:
            await db.client.close()
        assert [m["message"] for m in stored] == ["after the fault"]
    finally:
        proc.terminate()
