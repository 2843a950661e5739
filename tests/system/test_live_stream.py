"""End to end on the real thing: Ray, the embedded database, a gateway process,
and WebSocket and HTTP clients over real sockets.

Each test stops the streams it started, so the next one starts with none live.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from actors.registry_client import RegistryClient
from tests.support.clients import Api, WsClient, login, register_customer
from tests.support.databases import DatabaseServer, found
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, start_gateway
from tests.system.rest_support import new_product

pytestmark = pytest.mark.system

STREAM_EVENTS = {"chat_message", "stream_update", "pinned_products_updated", "chat_history"}


async def create_stream(admin: Api, title: str) -> str:
    r = await admin.post("/livestreams", json={"title": title, "description": f"{title} live"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "scheduled"
    return str(r.json()["id"])


async def stop_all_live(admin: Api) -> None:
    r = await admin.get("/livestreams/active")
    for s in r.json():
        await admin.post(f"/livestreams/{s['id']}/stop")


def email() -> str:
    return f"c-{uuid.uuid4().hex[:10]}@example.com"


def stream_frames(client: WsClient, stream_id: str) -> list[dict[str, Any]]:
    """Frames of one stream that only its viewers (and admins) may get;
    `stream_started` and `stream_stopped` go to everyone."""
    return [
        f
        for f in client.frames
        if f.get("streamId") == stream_id and f.get("type") not in ("stream_started", "stream_stopped")
    ]


async def kill_stream_actor(stream_id: str) -> int:
    actor = await found(RegistryClient.find()).stream_client(stream_id)
    assert actor is not None
    info = await actor.info()
    os.kill(info["pid"], signal.SIGKILL)
    return int(info["pid"])


async def test_two_streams_admin_and_three_customers(gateway_url: str, ws_url: str) -> None:
    admin_token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    alice_token, alice = await register_customer(gateway_url, email(), name="alice")
    async with Api(gateway_url, admin_token) as admin:
        await stop_all_live(admin)
        s1 = await create_stream(admin, "Shoes")
        s2 = await create_stream(admin, "Hats")

        async with WsClient(ws_url) as adm, WsClient(ws_url) as a, WsClient(ws_url) as b, WsClient(ws_url) as c:
            await adm.send({"type": "register_admin", "userId": "admin", "token": admin_token})
            await adm.wait_type("admin_registered")

            # The admin starts one stream over REST and the other over the WebSocket.
            r = await admin.post(f"/livestreams/{s1}/start")
            assert r.status_code == 200 and r.json()["isLive"] is True
            await adm.send({"type": "start_stream", "streamId": s2})
            for sid in (s1, s2):
                started = await adm.wait_type("stream_started", streamId=sid)
                assert started["streamData"]["streamId"] == sid
                assert started["streamData"]["viewerCount"] == 0
                assert set(started["streamData"]) >= {
                    "title",
                    "description",
                    "startTime",
                    "viewerCount",
                    "likes",
                    "likedBy",
                    "streamUrl",
                    "quality",
                }

            # Two customers on stream 1 (one logged in), a third on stream 2.
            await a.send({"type": "register", "sessionId": "sess-a", "token": alice_token, "streamId": s1})
            await b.send({"type": "register", "sessionId": "sess-b", "streamId": s1})
            await c.send({"type": "register", "sessionId": "sess-c", "streamId": s2})
            for client, sid, sess in ((a, s1, "sess-a"), (b, s1, "sess-b"), (c, s2, "sess-c")):
                reg = await client.wait_type("registered")
                assert reg["sessionId"] == sess and reg["status"] == "connected"
                # After `registered`: the stream's current state, then its chat history.
                after = client.frames.index(reg) + 1
                snap = await client.wait_for(lambda f: f.get("type") == "stream_started", start=after)
                assert snap["streamId"] == sid and snap["streamData"]["title"] == ("Shoes" if sid == s1 else "Hats")
                history = await client.wait_for(lambda f: f.get("type") == "chat_history", start=after)
                assert history["messages"] == [] and history["streamId"] == sid
                assert client.frames.index(snap) < client.frames.index(history)

            # Viewer counts arrive as coalesced updates.
            await a.wait_for(lambda f: f.get("type") == "stream_update" and f["viewerCount"] == 2)
            await c.wait_for(lambda f: f.get("type") == "stream_update" and f["viewerCount"] == 1)

            # Chat: the client's isAdmin is ignored; the admin's is set by the server.
            await b.send(
                {
                    "type": "chat_message",
                    "message": "is this leather?",
                    "username": "bob",
                    "isAdmin": True,
                    "timestamp": "2020-01-01T00:00:00Z",
                }
            )
            await adm.send({"type": "chat_message", "message": "yes, full grain", "username": "Shop", "streamId": s1})
            await c.send({"type": "chat_message", "message": "hats!", "username": "carol"})
            for client in (a, b):
                q = await client.wait_type("chat_message", message="is this leather?")
                assert q["username"] == "bob" and q["isAdmin"] is False and q["streamId"] == s1
                assert q["timestamp"] != "2020-01-01T00:00:00Z"
                ans = await client.wait_type("chat_message", message="yes, full grain")
                assert ans["isAdmin"] is True
            hats = await c.wait_type("chat_message", message="hats!")
            assert hats["streamId"] == s2
            await adm.wait_type("chat_message", message="hats!")  # admins see every stream

            # Likes: a toggle, once per user or session. An old app reads likedBy to know
            # whether *it* likes: it holds the app's own key, or nothing.
            await a.send({"type": "toggle_like", "userId": alice["id"]})
            await b.send({"type": "toggle_like", "sessionId": "sess-b"})
            await b.send({"type": "toggle_like", "sessionId": "sess-b"})  # unlike
            await b.send({"type": "toggle_like", "sessionId": "sess-b"})  # like again
            await a.wait_for(
                lambda f: f.get("type") == "stream_update" and f["likes"] == 2 and f["likedBy"] == [alice["id"]]
            )
            await b.wait_for(
                lambda f: f.get("type") == "stream_update" and f["likes"] == 2 and f["likedBy"] == ["sess-b"]
            )
            await a.send({"type": "toggle_like", "userId": alice["id"]})  # alice unlikes
            await a.wait_for(lambda f: f.get("type") == "stream_update" and f["likes"] == 1 and f["likedBy"] == [])
            await b.wait_for(
                lambda f: f.get("type") == "stream_update" and f["likes"] == 1 and f["likedBy"] == ["sess-b"]
            )

            # Pinned products, in display order, as the catalogue has them: an old admin
            # app's name and float price are accepted and ignored.
            boot = (await new_product(admin, price="89.50", name="Boot"))["id"]
            lace = (await new_product(admin, price="4.00", name="Laces"))["id"]
            await adm.send({"type": "pin_product", "streamId": s1, "productId": boot, "name": "Bot", "price": 89.5})
            await adm.send(
                {
                    "type": "pin_product",
                    "streamId": s1,
                    "productId": lace,
                    "name": "Laces",
                    "price": 4,
                    "displayOrder": 0,
                }
            )
            pinned = await b.wait_for(
                lambda f: f.get("type") == "pinned_products_updated" and len(f["pinnedProducts"]) == 2
            )
            assert [p["productId"] for p in pinned["pinnedProducts"]] == [lace, boot]
            assert [(p["name"], p["price"]) for p in pinned["pinnedProducts"]] == [("Laces", 4), ("Boot", 89.5)]
            assert set(pinned["pinnedProducts"][0]) >= {"productId", "name", "price", "image", "displayOrder"}

            # Messages without streamId from a customer of one stream while two are live go to its stream.
            await c.send({"type": "ping"})
            await c.wait_type("pong")
            await asyncio.gather(a.settle(), b.settle(), c.settle())

            # Nothing of stream 1 reached the stream-2 customer, nothing of stream 2 reached stream 1's.
            assert not stream_frames(c, s1)
            assert not stream_frames(a, s2) and not stream_frames(b, s2)
            assert not [f for f in c.frames if f.get("type") == "chat_message" and f["streamId"] != s2]
            assert not [f for f in a.frames + b.frames + c.frames if f.get("type") == "error"]

            # REST shows the live numbers from the actor.
            live = (await admin.get(f"/livestreams/{s1}")).json()
            assert live["viewerCount"] == 2 and live["likes"] == 1 and live["likedBy"] == ["sess-b"]
            assert [p["productId"] for p in live["pinnedProducts"]] == [lace, boot]
            assert {s["id"] for s in (await admin.get("/livestreams/active")).json()} == {s1, s2}

            # Stop stream 1: everyone hears it, its actor ends, the past list has its final numbers.
            await adm.send({"type": "stop_stream", "streamId": s1})
            for client in (adm, a, b, c):
                await client.wait_type("stream_stopped", streamId=s1)
            assert await found(RegistryClient.find()).stream_client(s1) is None
            past = (await admin.get("/livestreams/past")).json()
            ended = next(s for s in past if s["id"] == s1)
            assert ended["status"] == "ended" and ended["endTime"]
            assert ended["likes"] == 1 and ended["peakViewers"] == 2 and ended["chatCount"] == 2
            assert [p["productId"] for p in ended["pinnedProducts"]] == [lace, boot]

            # Stream 2 is unaffected and still serves its viewer.
            await c.send({"type": "chat_message", "message": "still here"})
            await c.wait_type("chat_message", message="still here")
            r = await admin.post(f"/livestreams/{s2}/stop")
            assert r.status_code == 200 and r.json()["status"] == "ended"
            await c.wait_type("stream_stopped", streamId=s2)


async def test_old_app_without_stream_id_follows_the_only_live_stream(gateway_url: str, ws_url: str) -> None:
    admin_token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(gateway_url, admin_token) as admin:
        await stop_all_live(admin)
        sid = await create_stream(admin, "Old app")
        async with WsClient(ws_url) as old:
            await old.send({"type": "register", "sessionId": "old-1"})
            await old.wait_type("registered")
            await old.wait_type("chat_history")  # nothing live yet: an empty history
            # With no stream live, stream-scoped messages get a clear error.
            await old.send({"type": "chat_message", "message": "anyone?", "username": "old"})
            err = await old.wait_type("error")
            assert "No stream is live" in err["message"]

            await admin.post(f"/livestreams/{sid}/start")
            await old.wait_type("stream_started", streamId=sid)
            await old.send({"type": "chat_message", "message": "hello", "username": "old"})
            msg = await old.wait_type("chat_message", message="hello")
            assert msg["streamId"] == sid
            await old.send({"type": "toggle_like", "sessionId": "old-1"})
            await old.wait_for(
                lambda f: f.get("type") == "stream_update" and f["likedBy"] == ["old-1"] and f["viewerCount"] == 1
            )

            # A reconnecting old app registers again with the same session: one viewer, history kept.
            async with WsClient(ws_url) as again:
                await again.send({"type": "register", "sessionId": "old-1"})
                snap = await again.wait_type("stream_started", streamId=sid)
                assert snap["streamData"]["likedBy"] == ["old-1"]
                history = await again.wait_type("chat_history")
                assert [m["message"] for m in history["messages"]] == ["hello"]
                await asyncio.sleep(0.6)
                assert (await admin.get(f"/livestreams/{sid}")).json()["viewerCount"] == 1
            await admin.post(f"/livestreams/{sid}/stop")
            await old.wait_type("stream_stopped", streamId=sid)


async def test_register_admin_needs_a_valid_admin_token(gateway_url: str, ws_url: str) -> None:
    customer_token, _ = await register_customer(gateway_url, email())
    async with WsClient(ws_url) as ws:
        await ws.send({"type": "register_admin", "userId": "x"})
        assert (await ws.wait_type("error"))["message"] == "Token required"
        await ws.send({"type": "register_admin", "userId": "x", "token": "not-a-jwt"})
        await ws.wait_for(lambda f: f.get("message") == "Authentication failed")
        await ws.send({"type": "register_admin", "userId": "x", "token": customer_token})
        await ws.wait_for(lambda f: str(f.get("message", "")).startswith("Authentication failed: not an admin"))
        # Still not an admin: admin-only frames are refused, and the connection stays usable.
        await ws.send({"type": "start_stream", "title": "sneaky"})
        await ws.wait_for(lambda f: "for admins" in str(f.get("message", "")))
        await ws.send({"type": "ping"})
        await ws.wait_type("pong")
        assert not ws.of_type("admin_registered")


async def test_stream_actor_killed_mid_stream_carries_on(gateway_url: str, ws_url: str) -> None:
    admin_token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(gateway_url, admin_token) as admin:
        await stop_all_live(admin)
        sid = await create_stream(admin, "Crash")
        await admin.post(f"/livestreams/{sid}/start")
        async with WsClient(ws_url) as v1, WsClient(ws_url) as v2, WsClient(ws_url) as adm:
            await adm.send({"type": "register_admin", "userId": "a", "token": admin_token})
            await adm.wait_type("admin_registered")
            for v, sess in ((v1, "k1"), (v2, "k2")):
                await v.send({"type": "register", "sessionId": sess, "streamId": sid})
                await v.wait_type("chat_history")
            await v1.send({"type": "toggle_like", "sessionId": "k1"})
            await v1.send({"type": "chat_message", "message": "before the crash", "username": "v1"})
            lamp = (await new_product(admin, price="20.00", name="Lamp"))["id"]
            await adm.send({"type": "pin_product", "streamId": sid, "productId": lamp})
            await v2.wait_for(lambda f: f.get("type") == "stream_update" and f["likes"] == 1 and f["viewerCount"] == 2)
            await v2.wait_type("pinned_products_updated")
            await v2.wait_type("chat_message", message="before the crash")
            before = (await admin.get(f"/livestreams/{sid}")).json()

            old_pid = await kill_stream_actor(sid)

            # The viewers stay connected; the next chat goes through the restarted actor.
            await v2.send({"type": "chat_message", "message": "after the crash", "username": "v2"})
            await v1.wait_type("chat_message", message="after the crash", timeout=30)
            assert v1.closed_code is None and v2.closed_code is None
            info = await found(await found(RegistryClient.find()).stream_client(sid)).info()
            assert info["pid"] != old_pid

            after = (await admin.get(f"/livestreams/{sid}")).json()
            for key in ("likes", "likedBy", "viewerCount", "pinnedProducts"):
                assert after[key] == before[key], key
            assert after["epoch"] == before["epoch"]  # nothing was lost: same epoch
            # A newcomer gets the whole chat history, from before and after the crash.
            async with WsClient(ws_url) as late:
                await late.send({"type": "register", "sessionId": "k3", "streamId": sid})
                history = await late.wait_type("chat_history")
                assert [m["message"] for m in history["messages"]] == ["before the crash", "after the crash"]
            # And the viewers' own sequence numbers never went backwards.
            seqs = [
                f["seq"]
                for f in v1.frames
                if f.get("streamId") == sid and f.get("type") in STREAM_EVENTS - {"chat_history"}
            ]
            assert seqs == sorted(seqs)
            await admin.post(f"/livestreams/{sid}/stop")


async def test_rest_accounts(gateway_url: str) -> None:
    address = email()
    async with Api(gateway_url) as anon:
        r = await anon.post(
            "/auth/register", json={"email": address, "password": "long-enough-1", "name": "Dee", "role": "admin"}
        )
        assert r.status_code == 201
        body = r.json()
        assert body["user"]["role"] == "customer"  # a body cannot choose its role
        assert "passwordHash" not in str(body)
        r = await anon.post("/auth/register", json={"email": address.upper(), "password": "long-enough-1"})
        assert r.status_code == 409 and r.json()["error"] == "conflict"
        r = await anon.post("/auth/login", json={"email": address, "password": "wrong-password"})
        assert r.status_code == 401 and r.json()["message"]
        r = await anon.post("/auth/register", json={"email": "not-an-email", "password": "x"})
        assert r.status_code == 422 and r.json()["error"] == "validation_error"
        assert (await anon.get("/auth/me")).status_code == 401
        r = await anon.post("/auth/login", json={"email": {"$ne": None}, "password": {"$gt": ""}})
        assert r.status_code == 422
    token = await login(gateway_url, address, "long-enough-1")
    async with Api(gateway_url, token) as me:
        r = await me.get("/auth/me")
        assert r.status_code == 200 and r.json()["user"]["email"] == address
    async with Api(gateway_url, token + "x") as forged:
        assert (await forged.get("/auth/me")).status_code == 401


async def test_rest_lifecycle_roles_and_errors(gateway_url: str) -> None:
    customer_token, _ = await register_customer(gateway_url, email())
    admin_token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with (
        Api(gateway_url) as anon,
        Api(gateway_url, customer_token) as cust,
        Api(gateway_url, admin_token) as admin,
    ):
        assert (await anon.post("/livestreams", json={"title": "x"})).status_code == 401
        assert (await cust.post("/livestreams", json={"title": "x"})).status_code == 403
        sid = await create_stream(admin, "Roles")
        assert (await cust.post(f"/livestreams/{sid}/start")).status_code == 403
        assert (await anon.post(f"/livestreams/{sid}/stop")).status_code == 401
        assert (await anon.get(f"/livestreams/{sid}")).status_code == 200
        assert (await anon.get("/livestreams/0123456789abcdef01234567")).status_code == 404
        assert (await anon.get("/livestreams/not-an-id")).status_code == 422
        assert (await admin.post(f"/livestreams/{sid}/stop")).status_code == 409  # not live
        assert (await admin.post(f"/livestreams/{sid}/start")).status_code == 200
        assert (await admin.post(f"/livestreams/{sid}/start")).status_code == 200  # idempotent
        assert (await admin.post(f"/livestreams/{sid}/stop")).status_code == 200
        assert (await admin.post(f"/livestreams/{sid}/start")).status_code == 409  # ended
        r = await anon.get("/livestreams/past", params={"limit": 1})
        assert r.status_code == 200 and len(r.json()) == 1 and int(r.headers["X-Total-Count"]) >= 1
        assert (await anon.get("/livestreams", params={"limit": 1000})).status_code == 422


async def test_viewers_of_a_killed_gateway_leave_the_count(
    gateway_url: str, ray_cluster: str, embedded_db: DatabaseServer, namespace: str, log_dir: Path
) -> None:
    """A gateway killed with SIGKILL cannot say goodbye: its viewers leave when its lease runs out."""
    admin_token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(gateway_url, admin_token) as admin:
        await stop_all_live(admin)
        sid = await create_stream(admin, "Lease")
        await admin.post(f"/livestreams/{sid}/start")
        doomed, doomed_url = start_gateway(
            ray_cluster, embedded_db.uri, namespace, log_dir, db_name=embedded_db.db_name
        )
        try:
            async with WsClient(ws_url_of(gateway_url)) as here, WsClient(ws_url_of(doomed_url)) as there:
                await here.send({"type": "register", "sessionId": "stays", "streamId": sid})
                await there.send({"type": "register", "sessionId": "goes", "streamId": sid})
                await here.wait_for(lambda f: f.get("type") == "stream_update" and f["viewerCount"] == 2, timeout=15)
                doomed.kill()
                update = await here.wait_for(
                    lambda f: f.get("type") == "stream_update" and f["viewerCount"] == 1, timeout=15
                )
                assert update["seq"] > 0
        finally:
            doomed.kill()
        await admin.post(f"/livestreams/{sid}/stop")


def ws_url_of(http_url: str) -> str:
    return http_url.replace("http://", "ws://") + "/ws"


async def test_the_registry_killed_comes_back_with_every_live_stream(gateway_url: str, ws_url: str) -> None:
    """Ray restarts the registry; it finds the streams' actors again (spares
    that adopted a stream included) and stopping still works."""
    admin_token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(gateway_url, admin_token) as admin:
        await stop_all_live(admin)
        sids = [await create_stream(admin, f"Registry {i}") for i in range(3)]
        for sid in sids:
            assert (await admin.post(f"/livestreams/{sid}/start")).status_code == 200
        registry = found(RegistryClient.find())
        before = {sid: (await found(await registry.stream_client(sid)).info())["pid"] for sid in sids}
        os.kill((await registry.ping_pid()), signal.SIGKILL)
        async with WsClient(ws_url) as v:
            await v.send({"type": "register", "sessionId": "after-registry", "streamId": sids[0]})
            await v.wait_type("chat_history", timeout=30)
            await v.send({"type": "chat_message", "message": "still live"})
            await v.wait_type("chat_message", message="still live", timeout=30)
        # The same actors serve the same streams: nothing was restarted but the registry.
        assert {sid: (await found(await registry.stream_client(sid)).info())["pid"] for sid in sids} == before
        for sid in sids:
            r = await admin.post(f"/livestreams/{sid}/stop")
            assert r.status_code == 200 and r.json()["status"] == "ended"
            assert await registry.stream_client(sid) is None
