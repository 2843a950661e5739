"""The opted-in protocol (v2): batch frames, acknowledgements of one's own chat,
and resumption from the last event seen, on the same gateway or another one,
and across a restart of the stream's actor."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors.registry_client import RegistryClient
from tests.support.clients import Api, WsClient, login
from tests.support.databases import DatabaseServer, found
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, start_gateway

pytestmark = pytest.mark.system


def ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws"


def events(client: WsClient, stream_id: str) -> list[dict[str, Any]]:
    """Every stream event the client got, unpacked from batch frames, in arrival order."""
    out: list[dict[str, Any]] = []
    for frame in client.frames:
        if frame.get("type") == "batch" and frame["streamId"] == stream_id:
            out.extend(frame["events"])
        elif (
            frame.get("streamId") == stream_id
            and "seq" in frame
            and frame.get("type")
            not in ("stream_started", "chat_history", "pinned_products_updated", "resumed", "resume_failed", "ack")
        ):
            out.append(frame)
    return out


@pytest.fixture
async def live_stream(gateway_url: str) -> AsyncIterator[tuple[str, Api]]:
    token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(gateway_url, token) as admin:
        for s in (await admin.get("/livestreams/active")).json():
            await admin.post(f"/livestreams/{s['id']}/stop")
        sid = (await admin.post("/livestreams", json={"title": f"resume-{uuid.uuid4().hex[:6]}"})).json()["id"]
        assert (await admin.post(f"/livestreams/{sid}/start")).status_code == 200
        yield sid, admin
        await admin.post(f"/livestreams/{sid}/stop")


async def test_batches_and_acknowledgements(gateway_url: str, live_stream: tuple[str, Api]) -> None:
    sid, _ = live_stream
    async with WsClient(ws(gateway_url)) as new, WsClient(ws(gateway_url)) as old:
        await new.send({"type": "register", "sessionId": "n1", "streamId": sid, "protocol": 2})
        await old.send({"type": "register", "sessionId": "o1", "streamId": sid})
        reg = await new.wait_type("registered")
        assert reg["protocol"] == 2
        await new.wait_type("chat_history")
        await old.wait_type("chat_history")
        for i in range(5):
            await new.send({"type": "chat_message", "message": f"hi {i}", "username": "n", "clientMsgId": f"c{i}"})
        acks = [await new.wait_type("ack", clientMsgId=f"c{i}") for i in range(5)]
        seqs = [a["seq"] for a in acks]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        await old.wait_type("chat_message", message="hi 4")
        await new.settle(0.5)
        chat = [e for e in events(new, sid) if e["type"] == "chat_message"]
        assert [(e["message"], e["seq"]) for e in chat] == [(f"hi {i}", seqs[i]) for i in range(5)]
        assert new.of_type("batch"), "opted-in clients get batch frames"
        assert not new.of_type("chat_message"), "...and no single event frames"
        assert not old.of_type("batch") and len(old.of_type("chat_message")) == 5  # old apps unchanged
        # A refused message is answered with an error carrying its id; the ack never comes.
        await new.send({"type": "chat_message", "message": "   ", "clientMsgId": "bad"})
        err = await new.wait_for(lambda f: f.get("type") == "error" and f.get("clientMsgId") == "bad")
        assert "non-empty" in err["message"]


async def resume_scenario(first_url: str, second_url: str, sid: str, kill_actor: bool = False) -> None:
    async with WsClient(ws(first_url)) as talker:
        await talker.send({"type": "register", "sessionId": "talker", "streamId": sid, "protocol": 2})
        await talker.wait_type("chat_history")
        reader = WsClient(ws(first_url))
        await reader.__aenter__()
        await reader.send({"type": "register", "sessionId": "reader", "streamId": sid, "protocol": 2})
        await reader.wait_type("chat_history")
        for i in range(3):
            await talker.send({"type": "chat_message", "message": f"before {i}", "clientMsgId": f"b{i}"})
        await talker.wait_type("ack", clientMsgId="b2")
        await reader.wait_for(
            lambda f: f.get("type") == "batch" and any(e.get("message") == "before 2" for e in f["events"])
        )
        seen = events(reader, sid)
        last = seen[-1]
        await reader.close()  # the app goes into a tunnel

        if kill_actor:
            info = await found(await found(RegistryClient.find()).stream_client(sid)).info()
            os.kill(info["pid"], signal.SIGKILL)
        for i in range(4):
            await talker.send({"type": "chat_message", "message": f"missed {i}", "clientMsgId": f"m{i}"})
        ack = await talker.wait_type("ack", clientMsgId="m3", timeout=30)

        async with WsClient(ws(second_url)) as back:
            await back.send(
                {
                    "type": "register",
                    "sessionId": "reader",
                    "streamId": sid,
                    "protocol": 2,
                    "resume": {"seq": last["seq"], "epoch": last["epoch"]},
                }
            )
            resumed = await back.wait_type("resumed", timeout=15)
            assert resumed["fromSeq"] == last["seq"]
            await back.wait_for(
                lambda f: f.get("type") == "batch" and any(e.get("seq") == ack["seq"] for e in f["events"]), timeout=15
            )
            got = events(back, sid)
            assert [e["seq"] for e in got] == list(range(last["seq"] + 1, got[-1]["seq"] + 1)), "no gap, no repeat"
            assert [e["message"] for e in got if e["type"] == "chat_message"] == [f"missed {i}" for i in range(4)]
            assert not back.of_type("chat_history"), "a resumed client gets the events, not a snapshot"
            # And it goes on live from there.
            await talker.send({"type": "chat_message", "message": "live again", "clientMsgId": "l"})
            await back.wait_for(
                lambda f: f.get("type") == "batch" and any(e.get("message") == "live again" for e in f["events"]),
                timeout=15,
            )


async def test_resume_on_the_same_gateway(gateway_url: str, live_stream: tuple[str, Api]) -> None:
    await resume_scenario(gateway_url, gateway_url, live_stream[0])


async def test_resume_on_another_gateway_across_an_actor_restart(
    gateway_url: str,
    live_stream: tuple[str, Api],
    ray_cluster: str,
    embedded_db: DatabaseServer,
    namespace: str,
    log_dir: Path,
) -> None:
    other, other_url = start_gateway(ray_cluster, embedded_db.uri, namespace, log_dir, db_name=embedded_db.db_name)
    try:
        await resume_scenario(gateway_url, other_url, live_stream[0], kill_actor=True)
    finally:
        other.terminate()


async def test_a_resume_that_cannot_be_served_says_so_and_sends_a_snapshot(
    gateway_url: str, live_stream: tuple[str, Api]
) -> None:
    sid, _ = live_stream
    async with WsClient(ws(gateway_url)) as c:
        await c.send({"type": "chat_message", "message": "x", "streamId": sid})  # not registered: refused
        await c.wait_type("error")
        await c.send(
            {
                "type": "register",
                "sessionId": "late",
                "streamId": sid,
                "protocol": 2,
                "resume": {"seq": 3, "epoch": "not-this-epoch"},
            }
        )
        failed = await c.wait_type("resume_failed")
        assert "epoch" in failed["reason"] and failed["epoch"] != "not-this-epoch"
        snap = await c.wait_for(lambda f: f.get("type") == "stream_started" and f.get("streamId") == sid)
        assert snap["epoch"] == failed["epoch"]
        await c.wait_type("chat_history")
        await asyncio.sleep(0)
