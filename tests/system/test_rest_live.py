"""The live side of the REST API over HTTP and WebSocket against the real
gateway, Ray and database: stream editing, views, chat history, likes, pins,
flash sales seen by a real viewer, Agora tokens, analytics, paging on every
list, and no 500 for junk."""

from __future__ import annotations

import asyncio
import base64
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zlib import crc32

import pytest
from agora_token_builder.AccessToken import AccessToken, unPackContent

from gateway.security.credentials import hash_password
from persistence.database import DatabaseConfig, connect
from persistence.users import UserStore
from tests.support.clients import Api, WsClient, login
from tests.support.databases import DatabaseServer
from tests.support.processes import AGORA_APP_CERTIFICATE, AGORA_APP_ID, start_gateway
from tests.system.rest_support import admin_token, assert_error, new_customer, new_product, new_stream, stop_all_live

pytestmark = pytest.mark.system


async def viewer(ws_url: str, session: str, stream_id: str, token: str | None = None) -> WsClient:
    client = await WsClient(ws_url).__aenter__()
    frame: dict[str, Any] = {"type": "register", "sessionId": session, "streamId": stream_id}
    if token:
        frame["token"] = token
    await client.send(frame)
    await client.wait_type("chat_history")
    return client


async def test_stream_editing_views_chat_likes_and_pins(gateway_url: str, ws_url: str) -> None:
    c = await new_customer(gateway_url, "liker")
    async with (
        Api(gateway_url, await admin_token(gateway_url)) as admin,
        Api(gateway_url) as anon,
        Api(gateway_url, c.token) as cust,
    ):
        await stop_all_live(admin)
        sid = await new_stream(admin, "Edit me")
        r = await admin.put(
            f"/livestreams/{sid}", json={"title": "Edited", "quality": "hd", "scheduledAt": "2030-01-01T10:00:00+02:00"}
        )
        assert r.status_code == 200 and (r.json()["title"], r.json()["quality"]) == ("Edited", "hd")
        assert r.json()["scheduledAt"] == "2030-01-01T08:00:00.000Z"
        assert_error(await anon.post(f"/livestreams/{sid}/like", headers={"X-Session-Id": "s1"}), 409)  # not live
        assert (await admin.post(f"/livestreams/{sid}/start")).status_code == 200
        assert_error(await admin.put(f"/livestreams/{sid}", json={"title": "x"}), 409)
        assert_error(await admin.delete(f"/livestreams/{sid}"), 409)

        # Views: anyone, counted per call.
        for headers in ({"X-Session-Id": "v-1"}, {}, {"X-Session-Id": "v-1"}):
            r = await anon.post(f"/livestreams/{sid}/view", headers=headers)
            assert r.status_code == 201
        assert r.json()["views"] == 3
        assert_error(await anon.post(f"/livestreams/{sid}/view", headers={"X-Session-Id": "bad id with spaces"}), 422)

        # Likes: by session when anonymous, by user when logged in, a toggle; the WS viewer sees them.
        w = await viewer(ws_url, "w-1", sid)
        try:
            assert_error(await anon.post(f"/livestreams/{sid}/like"), 401)  # no identity to count the like under
            r = await anon.post(f"/livestreams/{sid}/like", headers={"X-Session-Id": "anon-7"})
            assert r.json() == {"liked": True, "likes": 1, "likedBy": "anon-7"}
            r = await cust.post(f"/livestreams/{sid}/like", headers={"X-Session-Id": "ignored-when-logged-in"})
            assert r.json() == {"liked": True, "likes": 2, "likedBy": c.id}
            r = await anon.post(f"/livestreams/{sid}/like", headers={"X-Session-Id": "anon-7"})
            assert r.json() == {"liked": False, "likes": 1, "likedBy": "anon-7"}
            # The viewer (who does not like) sees the count; likedBy tells an old app only about itself.
            await w.wait_for(lambda f: f.get("type") == "stream_update" and f["likes"] == 1 and f["likedBy"] == [])
            # That update may be the first toggle's (likes 1 then too): the gateway's view catches up to the
            # last within a bound.
            deadline = time.monotonic() + 10
            while (live := (await anon.get(f"/livestreams/{sid}")).json())["likedBy"] != [c.id]:
                assert time.monotonic() < deadline, live
                await asyncio.sleep(0.1)
            assert live["likes"] == 1

            # Pins: resolved from the catalogue, prices as exact JSON numbers (issue 15).
            p1 = await new_product(admin, price="12.30", name="Lamp")
            p2 = await new_product(admin, price="4.00", name="Bulb")
            r = await admin.post(f"/livestreams/{sid}/pin", json={"productId": p1["id"], "name": "fake", "price": 0.01})
            assert r.status_code == 200 and (r.json()["name"], r.json()["price"], r.json()["priceMinor"]) == (
                "Lamp",
                12.3,
                1230,
            )
            await admin.post(f"/livestreams/{sid}/pin", json={"productId": p2["id"], "displayOrder": 0})
            pinned = await w.wait_for(
                lambda f: f.get("type") == "pinned_products_updated" and len(f["pinnedProducts"]) == 2
            )
            assert [(x["name"], x["price"], x["_id"]) for x in pinned["pinnedProducts"]] == [
                ("Bulb", 4, p2["id"]),
                ("Lamp", 12.3, p1["id"]),
            ]
            assert pinned["pinnedProducts"][1]["image"] == "https://cdn.example.com/p.jpg"
            assert_error(await admin.post(f"/livestreams/{sid}/pin", json={"productId": "0" * 24}), 404)
            assert (await admin.delete(f"/livestreams/{sid}/pin/{p2['id']}")).status_code == 204
            assert_error(await admin.delete(f"/livestreams/{sid}/pin/{p2['id']}"), 404)
            await w.wait_for(lambda f: f.get("type") == "pinned_products_updated" and len(f["pinnedProducts"]) == 1)
            assert [x["productId"] for x in (await anon.get(f"/livestreams/{sid}")).json()["pinnedProducts"]] == [
                p1["id"]
            ]

            # Chat history: newest first, paged.
            for i in range(5):
                await w.send({"type": "chat_message", "message": f"m{i}", "username": "w"})
            await w.wait_type("chat_message", message="m4")
        finally:
            await w.close()
        r = await anon.get(f"/livestreams/{sid}/chat", params={"limit": 2})
        assert r.headers["X-Total-Count"] == "5" and [m["message"] for m in r.json()] == ["m4", "m3"]
        r = await anon.get(f"/livestreams/{sid}/chat", params={"limit": 2, "page": 3})
        assert [m["message"] for m in r.json()] == ["m0"]
        assert set(r.json()[0]) >= {"id", "username", "message", "isAdmin", "timestamp"}

        assert (await admin.post(f"/livestreams/{sid}/stop")).status_code == 200
        ended = (await anon.get(f"/livestreams/{sid}")).json()
        assert ended["likes"] == 1 and ended["chatCount"] == 5
        assert (await admin.put(f"/livestreams/{sid}", json={"description": "replay"})).status_code == 200
        assert_error(await admin.post(f"/livestreams/{sid}/pin", json={"productId": p1["id"]}), 409)
        assert (await admin.delete(f"/livestreams/{sid}")).status_code == 204
        assert_error(await anon.get(f"/livestreams/{sid}"), 404)


async def test_pins_and_moderation_are_one_rule_over_rest_and_the_websocket(gateway_url: str, ws_url: str) -> None:
    """A WebSocket pin and a REST pin of one product pin the same thing (the
    catalogue's, exact price); an unknown product and invalid moderation input
    are refused in the same words on both paths, and nothing reaches the stream."""
    token = await admin_token(gateway_url)
    async with Api(gateway_url, token) as admin, WsClient(ws_url) as adm:
        await stop_all_live(admin)
        sid = await new_stream(admin, "Both paths", live=True)
        lamp = await new_product(admin, price="12.30", name="Lamp")
        await adm.send({"type": "register_admin", "token": token})
        await adm.wait_type("admin_registered")
        w = await viewer(ws_url, "both-1", sid)
        try:
            # An old admin app's name, price and image are accepted and ignored.
            await adm.send(
                {
                    "type": "pin_product",
                    "streamId": sid,
                    "productId": lamp["id"],
                    "name": "fake",
                    "price": 0.01,
                    "image": "https://elsewhere.example.com/x.jpg",
                }
            )
            by_ws = await w.wait_for(lambda f: f.get("type") == "pinned_products_updated" and f["pinnedProducts"])
            r = await admin.post(f"/livestreams/{sid}/pin", json={"productId": lamp["id"]})
            assert r.status_code == 200, r.text
            by_rest = await w.wait_for(lambda f: f.get("type") == "pinned_products_updated" and f["seq"] > by_ws["seq"])
            expected = [
                {
                    "productId": lamp["id"],
                    "_id": lamp["id"],
                    "name": "Lamp",
                    "price": 12.3,
                    "priceMinor": 1230,
                    "currency": lamp["currency"],
                    "image": "https://cdn.example.com/p.jpg",
                    "displayOrder": 1,
                }
            ]
            assert by_ws["pinnedProducts"] == by_rest["pinnedProducts"] == expected
            assert (r.json()["price"], r.json()["currency"]) == (12.3, lamp["currency"])

            # An unknown product: not_found on both, in the same words.
            n = len(adm.frames)
            await adm.send({"type": "pin_product", "streamId": sid, "productId": "0" * 24, "name": "x", "price": 1})
            ws_error = await adm.wait_for(lambda f: f.get("type") == "error", start=n)
            rest_error = assert_error(await admin.post(f"/livestreams/{sid}/pin", json={"productId": "0" * 24}), 404)
            assert ws_error["code"] == rest_error["error"] == "not_found"
            assert ws_error["message"] == rest_error["message"] == f"Product {'0' * 24} does not exist"

            # The same invalid moderation input, refused by both with the same problem.
            invalid: list[tuple[str, str, str, dict[str, Any]]] = [
                ("set_slow_mode", "PUT", "slow-mode", {"seconds": 3601}),
                ("set_slow_mode", "PUT", "slow-mode", {"seconds": 1.5}),
                ("mute_user", "POST", "mute", {"durationSeconds": 60}),
                ("mute_user", "POST", "mute", {"userId": "u1", "durationSeconds": 30 * 24 * 3600 + 1}),
                ("unmute_user", "POST", "unmute", {}),
                ("delete_message", "POST", "delete-message", {"messageId": 0}),
                ("set_blocked_words", "PUT", "blocked-words", {"words": ["   "]}),
                ("set_blocked_words", "PUT", "blocked-words", {"words": ["w" * 51]}),
            ]
            for kind, method, action, body in invalid:
                n = len(adm.frames)
                await adm.send({"type": kind, "streamId": sid, **body})
                ws_error = await adm.wait_for(lambda f: f.get("type") == "error", start=n)
                rest_error = assert_error(
                    await admin.request(method, f"/livestreams/{sid}/moderation/{action}", json=body), 422
                )
                # "Invalid <frame type>: <field>: <problem>" and "Invalid request: body.<field>: <problem>"
                assert ws_error["code"] == "invalid_frame", (kind, body)
                assert ws_error["message"].startswith(f"Invalid {kind}: ")
                assert ws_error["message"].split(": ", 2)[-1] == rest_error["message"].split(": ", 2)[-1], (kind, body)
            settings = (await admin.get(f"/livestreams/{sid}/moderation")).json()
            assert settings == {"slowModeSeconds": 0, "blockedWords": [], "muted": []}
        finally:
            await w.close()
            await admin.post(f"/livestreams/{sid}/stop")


async def test_flash_sale_cap_limit_end_time_and_events(gateway_url: str, ws_url: str) -> None:
    customers = await asyncio.gather(*(new_customer(gateway_url, f"fs{i}") for i in range(11)))
    async with Api(gateway_url, await admin_token(gateway_url)) as admin, Api(gateway_url) as anon:
        await stop_all_live(admin)
        sid = await new_stream(admin, "Flash", live=True)
        p = await new_product(admin, price="50.00", stock=30, name="Jacket")
        other = await new_product(admin, price="8.00", stock=30)
        w = await viewer(ws_url, f"fsv-{uuid.uuid4().hex[:6]}", sid)
        apis = [Api(gateway_url, c.token) for c in customers]
        try:
            sale_body = {
                "productId": p["id"],
                "price": "19.99",
                "quantity": 10,
                "perCustomerLimit": 2,
                "durationSeconds": 60,
            }
            assert (
                "not pinned"
                in assert_error(await admin.post(f"/livestreams/{sid}/flash-sales", json=sale_body), 409)["message"]
            )
            await admin.post(f"/livestreams/{sid}/pin", json={"productId": p["id"]})
            await admin.post(f"/livestreams/{sid}/pin", json={"productId": other["id"]})
            # A JSON number is a price (issue 15); one with more decimals than the currency has is not.
            assert_error(await admin.post(f"/livestreams/{sid}/flash-sales", json={**sale_body, "price": 19.999}), 422)
            assert_error(await admin.post(f"/livestreams/{sid}/flash-sales", json={**sale_body, "quantity": 31}), 409)
            assert_error(
                await admin.post(
                    f"/livestreams/{sid}/flash-sales",
                    json={**sale_body, "durationSeconds": None, "endsAt": "2001-01-01T00:00:00Z"},
                ),
                409,
            )
            assert_error(
                await admin.post(
                    f"/livestreams/{sid}/flash-sales",  # not a date-time with an offset
                    json={**sale_body, "durationSeconds": None, "endsAt": "2030-01-01T00:00:00"},
                ),
                422,
            )
            r = await admin.post(f"/livestreams/{sid}/flash-sales", json=sale_body)
            assert r.status_code == 201, r.text
            sale = r.json()
            assert (sale["price"], sale["remaining"], sale["status"]) == ("19.99", 10, "active")
            started = await w.wait_type("flash_sale_started")
            assert started["flashSale"]["saleId"] == sale["id"] and started["flashSale"]["remaining"] == 10
            assert started["flashSale"]["price"] == "19.99"
            assert_error(
                await admin.post(f"/livestreams/{sid}/flash-sales", json=sale_body), 409
            )  # one running sale per product

            line = {"productId": p["id"], "quantity": 1, "saleId": sale["id"]}
            # One customer, five orders at once, limit 2 per customer: exactly two.
            greedy = apis[0]
            burst = await asyncio.gather(
                *(greedy.post("/orders", json={"items": [line], "streamId": sid}) for _ in range(5))
            )
            assert sorted(r.status_code for r in burst) == [201, 201, 409, 409, 409], [r.text for r in burst]
            assert any("per customer" in r.json()["message"] for r in burst if r.status_code == 409)
            won = [r.json() for r in burst if r.status_code == 201]
            assert all(
                o["items"][0]["unitPrice"] == 19.99 and o["total"] == 19.99 and o["streamId"] == sid for o in won
            )
            assert_error(
                await apis[1].post("/orders", json={"items": [{**line, "quantity": 3}]}), 409
            )  # above the limit
            # Ten customers race for the eight left: exactly eight.
            race = await asyncio.gather(*(api.post("/orders", json={"items": [line]}) for api in apis[1:]))
            assert sorted(r.status_code for r in race) == [201] * 8 + [409] * 2, [r.text for r in race]
            assert all(r.json()["streamId"] == sid for r in race if r.status_code == 201)  # attributed via the sale
            stored = (await anon.get(f"/livestreams/{sid}/flash-sales/{sale['id']}")).json()
            assert (stored["remaining"], stored["status"]) == (0, "sold_out")
            assert (await anon.get(f"/products/{p['id']}")).json()["stock"] == 20
            ended = await w.wait_type("flash_sale_ended")
            assert ended["reason"] == "sold_out" and ended["flashSale"]["saleId"] == sale["id"]
            updates = [f["flashSale"]["remaining"] for f in w.of_type("flash_sale_updated")]
            assert updates == sorted(updates, reverse=True) and all(0 < u < 10 for u in updates)
            # Regular price still available after the sale.
            r = await apis[0].post("/orders", json={"items": [{"productId": p["id"], "quantity": 1}]})
            assert r.status_code == 201 and r.json()["total"] == 50

            # A short sale ends by itself on time, with an event; orders after it are refused.
            r = await admin.post(
                f"/livestreams/{sid}/flash-sales",
                json={
                    "productId": other["id"],
                    "price": "1.00",
                    "quantity": 5,
                    "perCustomerLimit": 5,
                    "durationSeconds": 5,
                },
            )
            short = r.json()
            await w.wait_for(
                lambda f: f.get("type") == "flash_sale_started" and f["flashSale"]["saleId"] == short["id"]
            )
            ok = await apis[2].post(
                "/orders", json={"items": [{"productId": other["id"], "quantity": 2, "saleId": short["id"]}]}
            )
            assert ok.status_code == 201 and ok.json()["total"] == 2
            update = await w.wait_for(
                lambda f: f.get("type") == "flash_sale_updated" and f["flashSale"]["saleId"] == short["id"]
            )
            assert update["flashSale"]["remaining"] == 3
            end = await w.wait_for(
                lambda f: f.get("type") == "flash_sale_ended" and f["flashSale"]["saleId"] == short["id"], timeout=15
            )
            assert end["reason"] == "time"
            assert datetime.now(UTC) >= datetime.fromisoformat(short["endsAt"])
            late = await apis[2].post(
                "/orders", json={"items": [{"productId": other["id"], "quantity": 1, "saleId": short["id"]}]}
            )
            assert_error(late, 409)
            assert (await anon.get(f"/livestreams/{sid}/flash-sales/{short['id']}")).json()["status"] == "ended"

            # An admin ends a sale early.
            r = await admin.post(
                f"/livestreams/{sid}/flash-sales",
                json={"productId": other["id"], "price": "2.00", "quantity": 3, "durationSeconds": 600},
            )
            third = r.json()
            r = await admin.post(f"/livestreams/{sid}/flash-sales/{third['id']}/end")
            assert r.json()["status"] == "ended" and r.json()["endedReason"] == "admin"
            await w.wait_for(lambda f: f.get("type") == "flash_sale_ended" and f["flashSale"]["saleId"] == third["id"])
            assert_error(
                await apis[3].post(
                    "/orders", json={"items": [{"productId": other["id"], "quantity": 1, "saleId": third["id"]}]}
                ),
                409,
            )
            r = await anon.get(f"/livestreams/{sid}/flash-sales", params={"limit": 2})
            assert r.headers["X-Total-Count"] == "3" and len(r.json()) == 2
        finally:
            await w.close()
            await asyncio.gather(*(api.__aexit__() for api in apis))
            await admin.post(f"/livestreams/{sid}/stop")


def parse_agora(token: str) -> tuple[AccessToken, bytes, int, int]:
    parsed = AccessToken()
    assert parsed.fromString(token)
    signature, crc_channel, crc_uid, _ = unPackContent(base64.b64decode(token[3 + 32 :]))
    return parsed, signature, crc_channel, crc_uid


def check_agora(answer: dict[str, Any], channel: str, role: str, ttl: int) -> None:
    token = answer["token"]
    assert token.startswith("006" + AGORA_APP_ID)
    parsed, signature, crc_channel, crc_uid = parse_agora(token)
    uid = answer["uid"]
    assert 1 <= uid < 2**32 and answer["channel"] == channel and answer["role"] == role
    assert crc_channel == crc32(channel.encode()) and crc_uid == crc32(str(uid).encode())
    expected = {1} | ({2, 3, 4} if role == "publisher" else set())
    assert set(parsed.messages) == expected
    assert set(parsed.messages.values()) == {answer["privilegeExpiredTs"]}
    assert abs(answer["privilegeExpiredTs"] - (time.time() + ttl)) < 30
    assert datetime.fromisoformat(answer["expiresAt"]).timestamp() == answer["privilegeExpiredTs"]
    # The signature: rebuild with the same certificate, salt and messages; it must be the same token.
    again = AccessToken(AGORA_APP_ID, AGORA_APP_CERTIFICATE, channel, uid)
    again.salt, again.ts, again.messages = parsed.salt, parsed.ts, dict(parsed.messages)
    assert again.build() == token
    forged = AccessToken(AGORA_APP_ID, "0" * 32, channel, uid)
    forged.salt, forged.ts, forged.messages = parsed.salt, parsed.ts, dict(parsed.messages)
    assert forged.build() != token and len(signature) == 32


async def test_agora_tokens(
    gateway_url: str, embedded_db: DatabaseServer, ray_cluster: str, namespace: str, log_dir: Path
) -> None:
    # A second admin, who does not host the stream.
    db = connect(DatabaseConfig(uri=embedded_db.uri, name=embedded_db.db_name))
    other_email = f"admin2-{uuid.uuid4().hex[:6]}@example.com"
    await UserStore(db).create(other_email, hash_password("admin2-password"), "Admin 2", role="admin")
    await db.client.close()
    c = await new_customer(gateway_url, "viewer")
    async with (
        Api(gateway_url, await admin_token(gateway_url)) as host,
        Api(gateway_url) as anon,
        Api(gateway_url, c.token) as cust,
        Api(gateway_url, await login(gateway_url, other_email, "admin2-password")) as admin2,
    ):
        sid = await new_stream(host, "Video")
        seen: list[str] = []
        url = "/livestreams/agora/token"
        r = await host.get(url, params={"streamId": sid, "role": "publisher"})
        assert r.status_code == 200, r.text
        check_agora(r.json(), sid, "publisher", 3600)
        seen.append(r.text)
        for api, headers in ((anon, {"X-Session-Id": "anon-video"}), (anon, {}), (cust, {}), (admin2, {}), (host, {})):
            r = await api.get(url, params={"streamId": sid}, headers=headers)
            assert r.status_code == 200, r.text
            check_agora(r.json(), sid, "audience", 3600)
            seen.append(r.text)
        for api in (anon, cust, admin2):
            assert_error(await api.get(url, params={"streamId": sid, "role": "publisher"}), 403)
        # Stable uid per caller; the caller may choose one; expiry within bounds.
        r1 = (await cust.get(url, params={"streamId": sid})).json()
        r2 = (await cust.get(url, params={"channelName": sid, "uid": 4242, "expiresIn": 86400})).json()
        assert r1["uid"] == (await cust.get(url, params={"streamId": sid})).json()["uid"]
        check_agora(r2, sid, "audience", 86400)
        assert r2["uid"] == 4242 and r2["expiresIn"] == 86400
        for bad in ({"expiresIn": 86401}, {"expiresIn": 10}, {"uid": 0}, {"uid": 2**32}, {"streamId": "nope"}, {}):
            params = {} if bad == {} else {"streamId": sid, **bad}
            assert_error(await cust.get(url, params=params), 422)
        assert_error(await cust.get(url, params={"streamId": "0" * 24}), 404)
        await host.post(f"/livestreams/{sid}/start")
        await host.post(f"/livestreams/{sid}/stop")
        assert_error(await cust.get(url, params={"streamId": sid}), 409)
        assert not any(AGORA_APP_CERTIFICATE in text for text in seen)
    port = gateway_url.rsplit(":", 1)[1]
    assert AGORA_APP_CERTIFICATE not in (log_dir / f"gateway-{port}.log").read_text()

    # Without the settings: 503 saying what to set.
    proc, bare = start_gateway(
        ray_cluster,
        embedded_db.uri,
        namespace,
        log_dir,
        db_name=embedded_db.db_name,
        env_overrides={"AGORA_APP_ID": "", "AGORA_APP_CERTIFICATE": ""},
    )
    try:
        async with Api(bare) as anon:
            body = assert_error(await anon.get("/livestreams/agora/token", params={"streamId": sid}), 503)
            assert "AGORA_APP_ID" in body["message"] and "AGORA_APP_CERTIFICATE" in body["message"]
    finally:
        proc.terminate()


async def test_analytics_match_what_happened(gateway_url: str, ws_url: str) -> None:
    today = datetime.now(UTC).date().isoformat()
    buyers = [await new_customer(gateway_url, "an1"), await new_customer(gateway_url, "an2")]
    async with Api(gateway_url, await admin_token(gateway_url)) as admin, Api(gateway_url) as anon:
        await stop_all_live(admin)

        async def today_row() -> dict[str, Any]:
            rows = (await admin.get("/analytics/daily", params={"from": today, "to": today})).json()
            return rows[0] if rows else {}

        before = await today_row()
        sid = await new_stream(admin, "Numbers", live=True)
        p = await new_product(admin, price="10.00", stock=50)
        tag = uuid.uuid4().hex[:6]
        viewers = [await viewer(ws_url, f"{tag}-{i}", sid, buyers[0].token if i == 0 else None) for i in range(3)]
        try:
            await viewers[0].wait_for(lambda f: f.get("type") == "stream_update" and f["viewerCount"] == 3)
            again = await viewer(ws_url, f"{tag}-1", sid)  # the same session again: not a new viewer
            await again.close()
            await viewers[1].send({"type": "toggle_like", "sessionId": "x"})
            await anon.post(f"/livestreams/{sid}/like", headers={"X-Session-Id": f"{tag}-2"})
            for i in range(4):
                await viewers[i % 3].send({"type": "chat_message", "message": f"c{i}", "username": "v"})
            await viewers[0].wait_type("chat_message", message="c3")
            for _ in range(2):
                await anon.post(f"/livestreams/{sid}/view", headers={"X-Session-Id": f"{tag}-0"})
            async with Api(gateway_url, buyers[0].token) as b0, Api(gateway_url, buyers[1].token) as b1:
                await b0.post("/orders", json={"items": [{"productId": p["id"], "quantity": 1}], "streamId": sid})
                await b1.post("/orders", json={"items": [{"productId": p["id"], "quantity": 2}], "streamId": sid})
                gone = (
                    await b1.post("/orders", json={"items": [{"productId": p["id"], "quantity": 5}], "streamId": sid})
                ).json()
                await b1.post(f"/orders/{gone['id']}/cancel")  # cancelled: not counted
                await b0.post("/orders", json={"items": [{"productId": p["id"], "quantity": 1}]})  # not this stream
            await asyncio.sleep(0.5)

            live = (await admin.get(f"/livestreams/{sid}/analytics")).json()
            expected = {
                "viewerCount": 3,
                "peakViewers": 3,
                "uniqueViewers": 3,
                "views": 2,
                "likes": 2,
                "chatMessages": 4,
                "orders": 2,
                "units": 3,
                "revenue": "30.00",
                "revenueMinor": 3000,
                "buyers": 2,
                "conversion": round(2 / 3, 4),
                "status": "live",
                "currency": "USD",
            }
            assert {k: live[k] for k in expected} == expected
            series = live["timeSeries"]
            assert sum(m["chatMessages"] for m in series) == 4 and sum(m["orders"] for m in series) == 2
            assert sum(m["units"] for m in series) == 3 and max(m["viewers"] for m in series) == 3
            assert [m["minute"] for m in series] == sorted(m["minute"] for m in series)
            assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", m["minute"]) for m in series)
        finally:
            for v in viewers:
                await v.close()
        await admin.post(f"/livestreams/{sid}/stop")
        after_stop = (await admin.get(f"/livestreams/{sid}/analytics")).json()
        assert {
            k: after_stop[k] for k in ("peakViewers", "uniqueViewers", "likes", "chatMessages", "orders", "revenue")
        } == {"peakViewers": 3, "uniqueViewers": 3, "likes": 2, "chatMessages": 4, "orders": 2, "revenue": "30.00"}
        assert after_stop["status"] == "ended"

        after = await today_row()
        diff = {
            k: after[k] - before.get(k, 0)
            for k in ("streams", "uniqueViewers", "views", "chatMessages", "orders", "units", "revenueMinor", "likes")
        }
        assert diff == {
            "streams": 1,
            "uniqueViewers": 3,
            "views": 2,
            "chatMessages": 4,
            "orders": 3,
            "units": 4,
            "revenueMinor": 4000,
            "likes": 2,
        }
        assert after["peakViewers"] >= 3
        assert_error(await admin.get("/analytics/daily", params={"from": "2026-13-45"}), 422)
        assert_error(await admin.get("/livestreams/0123456789abcdef01234567/analytics"), 404)


async def test_every_list_is_paged(gateway_url: str) -> None:
    async with Api(gateway_url, await admin_token(gateway_url)) as admin:
        sid = await new_stream(admin, "Paged")
        p = await new_product(admin)
        order = (await admin.post("/orders", json={"items": [{"productId": p["id"], "quantity": 1}]})).json()
        await admin.post(f"/orders/{order['id']}/payments", json={"method": "bank_transfer", "amount": order["total"]})
        ids = {"stream_id": sid, "order_id": order["id"]}
        spec = (await admin.get("/openapi.json")).json()
        lists = [
            path
            for path, ops in spec["paths"].items()
            if "get" in ops
            and ops["get"]["responses"]["200"]["content"].get("application/json", {}).get("schema", {}).get("type")
            == "array"
        ]
        assert len(lists) == 11, lists  # GET /users among them
        for template in lists:
            path = template.format(**ids)
            r = await admin.get(path, params={"limit": 1})
            assert r.status_code == 200 and len(r.json()) <= 1 and int(r.headers["X-Total-Count"]) >= 0, (path, r.text)
            assert (await admin.get(path, params={"page": 100_000, "limit": 100})).json() == []
            for bad in ({"limit": 0}, {"limit": 101}, {"page": 0}, {"page": "x"}):
                assert_error(await admin.get(path, params=bad), 422)


JUNK_BODIES: list[Any] = [
    "not json",
    "[]",
    "null",
    '{"a": {"$ne": 1}}',
    '{"title": 1e400}',
    '{"items": [{"productId": {"$gt": ""}, "quantity": 1e20}]}',
    '{"price": NaN, "status": [], "method": {}}',
    '"' + "x" * 70000 + '"',
]
JUNK_IDS = ["zz", "0" * 24, "%00", "A" * 24, "1" * 200, "..%2F..%2Fetc"]


async def test_junk_never_gets_a_500(gateway_url: str) -> None:
    async with Api(gateway_url, await admin_token(gateway_url)) as admin, Api(gateway_url) as anon:
        spec = (await anon.get("/openapi.json")).json()
        statuses: dict[int, int] = {}
        for template, ops in spec["paths"].items():
            for method in ops:
                for junk_id in JUNK_IDS:
                    path = re.sub(r"\{[a-z_]+\}", junk_id, template)
                    for api in (admin, anon):
                        bodies = JUNK_BODIES if method in ("post", "put", "patch") else [None]
                        for body in bodies:
                            r = await api.request(
                                method.upper(),
                                path,
                                content=body,
                                params={"limit": "-1", "page": "9" * 30, "streamId": junk_id},
                                headers={
                                    "Content-Type": "application/json",
                                    "X-Session-Id": junk_id,
                                    "Idempotency-Key": junk_id,
                                },
                            )
                            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                            assert r.status_code < 500, (method, path, body and body[:60], r.status_code, r.text[:300])
                            if r.status_code >= 400:
                                assert r.json()["status"] == r.status_code
        assert set(statuses) <= {200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 422}, statuses
        r = await anon.get("/livestreams/agora/token", headers={"Authorization": "Bearer junk"})
        assert_error(r, 401)


async def test_stopping_over_the_websocket_ends_running_sales_too(gateway_url: str, ws_url: str) -> None:
    token = await admin_token(gateway_url)
    async with Api(gateway_url, token) as admin:
        await stop_all_live(admin)
        sid = await new_stream(admin, "Stop with a sale", live=True)
        p = await new_product(admin, price="10.00", stock=5)
        await admin.post(f"/livestreams/{sid}/pin", json={"productId": p["id"]})
        r = await admin.post(
            f"/livestreams/{sid}/flash-sales",
            json={"productId": p["id"], "price": "5.00", "quantity": 2, "durationSeconds": 600},
        )
        sale = r.json()
        async with WsClient(ws_url) as adm:
            await adm.send({"type": "register_admin", "token": token})
            await adm.wait_type("admin_registered")
            await adm.send({"type": "stop_stream", "streamId": sid})
            await adm.wait_type("stream_stopped", streamId=sid)
        stored = (await admin.get(f"/livestreams/{sid}/flash-sales/{sale['id']}")).json()
        assert (stored["status"], stored["endedReason"]) == ("ended", "stream_stopped")
        ended = (await admin.get(f"/livestreams/{sid}")).json()
        assert ended["viewerCount"] == 0 and ended["status"] == "ended"
