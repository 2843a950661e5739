"""The audit, in the spirit of Ray's nightly chaos test: numbered chat and like
toggles go in while the stream actor's process is killed with SIGKILL several
times and the database server is restarted once. Afterwards what was stored,
what was acknowledged and what every viewer saw must agree exactly.

The recovery times (kill to the next event a viewer receives) are printed and
written to `reports/chaos-audit.json`; the test asserts correctness, not speed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from actors.registry_client import RegistryClient
from persistence.chat import ChatStore
from persistence.database import DatabaseConfig, connect
from tests.support.clients import Api, WsClient, login
from tests.support.databases import DatabaseServer, found
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.system

SENDERS = 3
VIEWERS = 3
MESSAGES = 40  # per sender
PACE_S = 0.2  # between one sender's messages (8 s of sending), within the default chat limit per connection (5/s)
KILLS_AT_S = (1.0, 3.0, 5.0)  # far enough apart to measure each recovery on its own
DB_RESTART_AT_S = 6.5
DB_DOWN_S = 0.8
REPORT = Path(__file__).resolve().parents[2] / "reports" / "chaos-audit.json"


def batch_events(client: WsClient, stream_id: str) -> list[tuple[float, dict[str, Any]]]:
    """Every event of the stream the client got in batch frames, with when its frame arrived."""
    return [
        (t, e)
        for t, f in zip(client.arrived_at, client.frames, strict=True)
        if f.get("type") == "batch" and f["streamId"] == stream_id
        for e in f["events"]
    ]


async def test_nothing_acknowledged_is_lost_through_kills_and_a_database_restart(
    gateway_url: str, embedded_db: DatabaseServer
) -> None:
    ws_url = gateway_url.replace("http://", "ws://") + "/ws"
    token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(gateway_url, token) as admin:
        for s in (await admin.get("/livestreams/active")).json():
            await admin.post(f"/livestreams/{s['id']}/stop")
        sid = (await admin.post("/livestreams", json={"title": f"chaos-{uuid.uuid4().hex[:6]}"})).json()["id"]
        assert (await admin.post(f"/livestreams/{sid}/start")).status_code == 200

        viewers = [WsClient(ws_url) for _ in range(VIEWERS)]
        senders = [WsClient(ws_url) for _ in range(SENDERS)]
        for i, c in enumerate(viewers + senders):
            await c.__aenter__()
            await c.send({"type": "register", "sessionId": f"audit-{i}", "streamId": sid, "protocol": 2})
            await c.wait_type("chat_history")

        async def send_all(k: int, client: WsClient) -> None:
            for n in range(MESSAGES):
                await client.send({"type": "chat_message", "message": f"s{k}:{n}", "clientMsgId": f"c{n}"})
                if n % 5 == 0:
                    await client.send({"type": "toggle_like", "clientMsgId": f"l{n}"})
                await asyncio.sleep(PACE_S)

        kills: list[tuple[float, int]] = []  # (when, the stream's seq just before)
        db_back: list[float] = []

        async def chaos() -> None:
            start = time.monotonic()
            plan = sorted([(t, "kill") for t in KILLS_AT_S] + [(DB_RESTART_AT_S, "db")])
            if not embedded_db.restartable:
                print("\nchaos audit: the database is external (MONGODB_URI): its restart is skipped")
                plan = [(t, w) for t, w in plan if w != "db"]
            for at, what in plan:
                await asyncio.sleep(max(0.0, start + at - time.monotonic()))
                if what == "kill":
                    actor = found(await found(RegistryClient.find()).stream_client(sid))
                    info = await actor.info(timeout_s=20)
                    os.kill(info["pid"], signal.SIGKILL)
                    kills.append((time.monotonic(), int(info["seq"])))
                else:
                    await asyncio.to_thread(embedded_db.stop)
                    await asyncio.sleep(DB_DOWN_S)
                    await asyncio.to_thread(embedded_db.start)
                    db_back.append(time.monotonic())

        await asyncio.gather(chaos(), *(send_all(k, c) for k, c in enumerate(senders)))

        # Every message and toggle is answered: acknowledged (stored) or refused.
        sent_ids = [f"c{n}" for n in range(MESSAGES)] + [f"l{n}" for n in range(0, MESSAGES, 5)]

        def outcomes(client: WsClient) -> dict[str, str]:
            """Each command's first answer: `ack`, or `error:<code>` (a refusal, for that reason)."""
            first: dict[str, str] = {}
            for f in client.frames:
                if f.get("type") in ("ack", "error") and f.get("clientMsgId") in sent_ids:
                    first.setdefault(f["clientMsgId"], "ack" if f["type"] == "ack" else f"error:{f.get('code')}")
            return first

        deadline = time.monotonic() + 90
        while not all(len(outcomes(c)) == len(sent_ids) for c in senders):
            assert time.monotonic() < deadline, "some commands were never answered"
            await asyncio.sleep(0.2)

        # Every command sent is accounted for. In this run nothing is refused: a kill or a database
        # restart is absorbed by the gateway re-sending what was in flight (same batch id) to the
        # restarted actor, within the call's patience, so every command is acknowledged. A refusal of
        # any kind (`unavailable`, `busy`, `internal`) would mean in-flight commands were dropped.
        by_kind = Counter(kind for c in senders for kind in outcomes(c).values())
        print(f"\nchaos audit: {SENDERS * len(sent_ids)} commands sent, answered by kind: {dict(by_kind)}")
        assert by_kind == Counter({"ack": SENDERS * len(sent_ids)}), f"commands refused instead of resent: {by_kind}"

        acked_chat: set[str] = set()
        expected_likes = 0
        for k, client in enumerate(senders):
            acks = {f["clientMsgId"]: f for f in client.frames if f.get("type") == "ack"}
            acked_chat |= {f"s{k}:{n}" for n in range(MESSAGES) if f"c{n}" in acks}
            toggles = [acks[f"l{n}"] for n in range(0, MESSAGES, 5) if f"l{n}" in acks]
            expected_likes += len(toggles) % 2
            if toggles:
                assert toggles[-1]["liked"] == (len(toggles) % 2 == 1)
        assert acked_chat, "nothing was acknowledged at all"

        # Let the viewers receive the tail, then stop the stream (its final state is stored).
        last_seq = max(f["seq"] for c in senders for f in c.frames if f.get("type") == "ack" and f.get("seq"))
        for v in viewers:
            await v.wait_for(
                lambda f: f.get("type") == "batch" and any(e["seq"] >= last_seq for e in f["events"]), timeout=30
            )
        # The like count travels in the throttled stream_update, which can come after the last ack's
        # event: the gateway's view has it within a bound.
        deadline = time.monotonic() + 10
        while (live := (await admin.get(f"/livestreams/{sid}")).json())["likes"] != expected_likes:
            assert time.monotonic() < deadline, (live["likes"], expected_likes)
            await asyncio.sleep(0.1)
        assert (await admin.post(f"/livestreams/{sid}/stop")).status_code == 200

    # The stored chat is exactly the acknowledged set, each sender's in order, no duplicates.
    db = connect(DatabaseConfig(uri=embedded_db.uri, name=embedded_db.db_name))
    stored = [m["message"] for m in await ChatStore(db).all_in_order(sid)]
    await db.client.close()
    assert Counter(stored) == Counter(acked_chat), "stored chat differs from what was acknowledged"
    for k in range(SENDERS):
        mine = [int(m.split(":")[1]) for m in stored if m.startswith(f"s{k}:")]
        assert mine == sorted(mine), f"sender {k}'s messages are out of order"

    # Every viewer saw every acknowledged message exactly once, in the stored order.
    for v in viewers:
        seen = [e["message"] for _, e in batch_events(v, sid) if e["type"] == "chat_message"]
        assert seen == stored
        seqs = [e["seq"] for _, e in batch_events(v, sid)]
        assert seqs == sorted(set(seqs)), "a viewer saw an event twice or out of order"
        assert v.closed_code is None, "viewers stay connected throughout"

    # Recovery: from each kill to the first event after it (one the dead process had not produced).
    arrivals = sorted((t, e["seq"]) for v in viewers for t, e in batch_events(v, sid))
    recovery = [
        round(next((t for t, seq in arrivals if t > k and seq > at_seq), float("nan")) - k, 3) for k, at_seq in kills
    ]
    after_db = [round(next((t for t, _ in arrivals if t > b), float("nan")) - b, 3) for b in db_back]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "senders": SENDERS,
                "viewers": VIEWERS,
                "messages_sent": SENDERS * MESSAGES,
                "acknowledged": len(acked_chat),
                "stored": len(stored),
                "kills": len(kills),
                "database_restarts": len(db_back),
                "recovery_seconds": recovery,
                "after_database_restart_seconds": after_db,
                "likes": expected_likes,
            },
            indent=2,
        )
    )
    print(
        f"\nchaos audit: {len(acked_chat)} acknowledged = {len(stored)} stored; "
        f"recovery after each kill (s): {recovery}; first event after the database came back (s): {after_db}"
    )
    for c in viewers + senders:
        await c.close()
