"""Operating a gateway: health, readiness, Prometheus metrics, and draining
(SIGTERM) with viewers moving to another gateway without losing events."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.clients import Api, WsClient, login
from tests.support.databases import DatabaseServer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, start_gateway

pytestmark = pytest.mark.system


def ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws"


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{url}/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


async def start_live(url: str, title: str) -> str:
    token = await login(url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(url, token) as admin:
        sid = (await admin.post("/livestreams", json={"title": f"{title}-{uuid.uuid4().hex[:6]}"})).json()["id"]
        assert (await admin.post(f"/livestreams/{sid}/start")).status_code == 200
    return str(sid)


async def test_health_readiness_and_metrics(gateway_url: str) -> None:
    assert httpx.get(f"{gateway_url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway_url}/ready").json()
    assert ready["status"] == "ready" and ready["nodeId"] and ready["gatewayId"].startswith("gw-")
    sid = await start_live(gateway_url, "metrics")
    before = scrape(gateway_url)
    async with WsClient(ws(gateway_url)) as old, WsClient(ws(gateway_url)) as new:
        await old.send({"type": "register", "sessionId": "m-old", "streamId": sid})
        await new.send({"type": "register", "sessionId": "m-new", "streamId": sid, "protocol": 2})
        await old.wait_type("chat_history")
        await new.wait_type("chat_history")
        await new.send({"type": "chat_message", "message": "counted", "clientMsgId": "c1"})
        await new.wait_type("ack", clientMsgId="c1")
        await old.wait_type("chat_message", message="counted")
        await asyncio.sleep(0.3)  # the batch tick
        m = scrape(gateway_url)
    assert m[("wrencos_connections", (("protocol", "1"),))] >= 1
    assert m[("wrencos_connections", (("protocol", "2"),))] >= 1
    assert m[("wrencos_watchers", ())] >= 2
    assert m[("wrencos_live_streams", ())] >= 1
    assert m[("wrencos_relays_active", ())] >= 1
    assert m[("wrencos_draining", ())] == 0

    def grew(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return m[(name, labels)] - before.get((name, labels), 0.0)

    assert grew("wrencos_commands_sent_total", (("command", "Chat"),)) >= 1
    assert grew("wrencos_commands_sent_total", (("command", "Join"),)) >= 2
    assert grew("wrencos_stream_events_received_total") >= 1
    assert grew("wrencos_frames_sent_total") >= 2
    assert grew("wrencos_fanout_seconds_count") >= 1
    assert grew("wrencos_actor_call_seconds_count", (("method", "submit"),)) >= 1
    assert ("wrencos_gc_pause_seconds_count", (("generation", "2"),)) in m  # collector pauses, by generation


async def test_drain_moves_viewers_to_another_gateway_without_losing_events(
    gateway_url: str, ray_cluster: str, embedded_db: DatabaseServer, namespace: str, log_dir: Path
) -> None:
    draining, drain_url = start_gateway(
        ray_cluster,
        embedded_db.uri,
        namespace,
        log_dir,
        db_name=embedded_db.db_name,
        env_overrides={"DRAIN_NOTICE_SECONDS": "1.5", "DRAIN_SECONDS": "1", "METRICS_TOKEN": "scrape-" + "s" * 24},
    )
    try:
        # With METRICS_TOKEN set, /metrics is for Prometheus only.
        assert httpx.get(f"{drain_url}/metrics").status_code == 401
        assert httpx.get(f"{drain_url}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = httpx.get(f"{drain_url}/metrics", headers={"Authorization": "Bearer scrape-" + "s" * 24})
        assert ok.status_code == 200 and "wrencos_connections" in ok.text
        sid = await start_live(gateway_url, "drain")
        async with WsClient(ws(gateway_url)) as talker:
            await talker.send({"type": "register", "sessionId": "d-talker", "streamId": sid, "protocol": 2})
            await talker.wait_type("chat_history")
            new, old = WsClient(ws(drain_url)), WsClient(ws(drain_url))
            for c, session, extra in ((new, "d-new", {"protocol": 2}), (old, "d-old", {})):
                await c.__aenter__()
                await c.send({"type": "register", "sessionId": session, "streamId": sid, **extra})
                await c.wait_type("chat_history")

            sent: list[str] = []

            async def talk() -> None:  # the stream goes on all through the drain (within the chat rate limit)
                for k in range(24):
                    sent.append(f"during {k}")
                    await talker.send({"type": "chat_message", "message": f"during {k}", "clientMsgId": f"d{k}"})
                    await asyncio.sleep(0.25)
                await talker.wait_type("ack", clientMsgId="d23", timeout=20)

            talking = asyncio.create_task(talk())
            # Both viewers are watching the conversation before the drain begins (waited for, not slept:
            # the point they resume from must exist).
            await new.wait_for(lambda f: f.get("type") == "batch", timeout=20)
            await old.wait_type("chat_message", timeout=20)
            stopped_at = time.monotonic()
            draining.proc.send_signal(15)  # SIGTERM: what systemd and Kubernetes send
            ready = httpx.get(f"{drain_url}/ready", timeout=5)
            deadline = time.monotonic() + 10  # within the notice (1.5 s) on a calm machine; polled, not slept
            while ready.status_code == 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                ready = httpx.get(f"{drain_url}/ready", timeout=5)
            assert ready.status_code == 503 and ready.json()["status"] == "draining"
            async with WsClient(ws(drain_url)) as refused:  # no new connections
                await asyncio.sleep(0.5)
            assert refused.closed_code == 1012

            # The open ones are moved on: closed with 1012 ("reconnect") within the drain.
            deadline = asyncio.get_running_loop().time() + 10
            while (new.closed_code is None or old.closed_code is None) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
            assert (new.closed_code, old.closed_code) == (1012, 1012)
            seen = [e for f in new.frames if f.get("type") == "batch" for e in f["events"]]
            last = seen[-1]

            async with WsClient(ws(gateway_url)) as new2, WsClient(ws(gateway_url)) as old2:
                await new2.send(
                    {
                        "type": "register",
                        "sessionId": "d-new",
                        "streamId": sid,
                        "protocol": 2,
                        "resume": {"seq": last["seq"], "epoch": last["epoch"]},
                    }
                )
                await new2.wait_type("resumed", timeout=15)
                await old2.send({"type": "register", "sessionId": "d-old", "streamId": sid})
                await old2.wait_type("chat_history", timeout=15)
                await talking
                await new2.wait_for(
                    lambda f: f.get("type") == "batch" and any(e.get("message") == "during 23" for e in f["events"]),
                    timeout=15,
                )
                after = [e for f in new2.frames if f.get("type") == "batch" for e in f["events"]]
                got = [e["seq"] for e in seen + after]
                assert got == list(range(got[0], got[-1] + 1)), "no gap, no repeat across the move"
                chat = [e["message"] for e in seen + after if e["type"] == "chat_message"]
                assert chat == sent, "the opted-in app saw every message once, in order"
        assert draining.proc.wait(30) == 0
        assert time.monotonic() - stopped_at < 20, "the drain is bounded"
    finally:
        draining.kill()


async def test_a_gateway_follows_only_the_streams_it_has_viewers_of(
    gateway_url: str, ray_cluster: str, embedded_db: DatabaseServer, namespace: str, log_dir: Path
) -> None:
    """Fan-out in levels: a stream's actor serves the gateways that have its viewers, not every
    gateway. A gateway whose viewers left stops following the stream; the next viewer there
    still gets the current state (chat sent meanwhile through another gateway), then live events."""
    quiet, quiet_url = start_gateway(
        ray_cluster,
        embedded_db.uri,
        namespace,
        log_dir,
        db_name=embedded_db.db_name,
        env_overrides={"RELAY_IDLE_SECONDS": "1"},
    )
    try:
        sid = await start_live(gateway_url, "levels")
        active = ("wrencos_relays_active", ())
        async with WsClient(ws(quiet_url)) as passer_by:
            await passer_by.send({"type": "register", "sessionId": "l-passer", "streamId": sid})
            await passer_by.wait_type("chat_history")
        deadline = time.monotonic() + 15
        while scrape(quiet_url)[active] > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert scrape(quiet_url)[active] == 0, "no viewer here: the gateway stopped following the stream"
        received = scrape(quiet_url)[("wrencos_stream_events_received_total", ())]
        async with WsClient(ws(gateway_url)) as talker:
            await talker.send({"type": "register", "sessionId": "l-talker", "streamId": sid, "protocol": 2})
            await talker.wait_type("chat_history")
            await talker.send({"type": "chat_message", "message": "while nobody watched there", "clientMsgId": "w"})
            await talker.wait_type("ack", clientMsgId="w")
            # The chat is published: the gateway that follows the stream has it. Any poll the quiet
            # gateway had open would have returned it by now too; give it half a second more.
            await talker.wait_for(
                lambda f: (
                    f.get("type") == "batch"
                    and any(e.get("message") == "while nobody watched there" for e in f["events"])
                ),
                timeout=15,
            )
            await asyncio.sleep(0.5)
            assert scrape(quiet_url)[("wrencos_stream_events_received_total", ())] == received, (
                "the actor sent nothing to a gateway without viewers"
            )
            async with WsClient(ws(quiet_url)) as back:
                await back.send({"type": "register", "sessionId": "l-back", "streamId": sid})
                history = await back.wait_type("chat_history", timeout=15)
                assert [m["message"] for m in history["messages"]][-1] == "while nobody watched there"
                await talker.send({"type": "chat_message", "message": "live", "clientMsgId": "l"})
                await back.wait_type("chat_message", message="live", timeout=15)
            assert scrape(quiet_url)[active] == 1
    finally:
        quiet.terminate()
