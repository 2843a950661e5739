"""JWT attacks against a live gateway's admin endpoints, over REST and the WebSocket.

Each forged token differs from one the gateway accepts in one way only: `alg:
none`, HS512 signed with the real secret, expired, a wrong issuer, a wrong
audience, and a customer's own token with its role changed to `admin`
(re-signed with a wrong key, unsigned, or with its signature kept). The
control, built by the same code with nothing changed, is accepted, so each
refusal is the attack's doing. Over REST every attack gets a 401 on every admin
and moderator endpoint tried; over the WebSocket, `register` with it leaves a
guest (an `invalid_token` error), `register_admin` is refused (`invalid_token`),
and admin and moderator frames after either are refused (`forbidden`), with
nothing reaching a viewer. Nothing changes: the catalogue, the stream, its pins
and moderation settings, the customer's role.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import jwt
import pytest

from gateway.security.credentials import AUDIENCE, ISSUER
from tests.support.clients import Api
from tests.support.processes import JWT_SECRET
from tests.system.rest_support import admin_token, new_customer, new_product, new_stream, stop_all_live
from tests.system.test_ws_authz import Room, until_pong_after

pytestmark = [
    pytest.mark.system,
    # The HS512 swap is signed with the gateway's real secret, shorter than PyJWT recommends for HS512.
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]

WRONG_KEY = "not-the-secret-" + "z" * 40


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """`alg: none`: a header, the claims and an empty signature."""
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def forged(user: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The claims the gateway would issue for `user`, with `changes` (None removes a claim)."""
    now = int(time.time())
    claims = {
        "sub": user["id"],
        "role": user["role"],
        "email": user["email"],
        "name": user.get("name", ""),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def attacks(admin: dict[str, Any], customer_token: str) -> dict[str, str]:
    now = int(time.time())
    as_admin = {**claims_of(customer_token), "role": "admin"}
    original_signature = customer_token.rsplit(".", 1)[1]
    header = customer_token.split(".", 1)[0]
    return {
        "alg none": unsigned(forged(admin)),
        "HS512 with the real secret": jwt.encode(forged(admin), JWT_SECRET, algorithm="HS512"),
        "expired": jwt.encode(forged(admin, iat=now - 1200, exp=now - 600), JWT_SECRET, algorithm="HS256"),
        "wrong issuer": jwt.encode(forged(admin, iss="someone-else"), JWT_SECRET, algorithm="HS256"),
        "wrong audience": jwt.encode(forged(admin, aud="other-apps"), JWT_SECRET, algorithm="HS256"),
        "no audience": jwt.encode(forged(admin, aud=None), JWT_SECRET, algorithm="HS256"),
        "customer made admin, re-signed with a wrong key": jwt.encode(as_admin, WRONG_KEY, algorithm="HS256"),
        "customer made admin, unsigned": unsigned(as_admin),
        "customer made admin, signature kept": f"{header}.{b64(as_admin)}.{original_signature}",
    }


async def test_forged_tokens_get_nothing_over_rest_or_the_websocket(gateway_url: str, ws_url: str) -> None:
    async with Api(gateway_url, await admin_token(gateway_url)) as admin:
        await stop_all_live(admin)
        admin_user = (await admin.get("/auth/me")).json()["user"]
        customer = await new_customer(gateway_url, "jwt")
        product = await new_product(admin, price="5.00")
        stream = await new_stream(admin, "jwt live", live=True)
        tokens = attacks(admin_user, customer.token)
        control = jwt.encode(forged(admin_user), JWT_SECRET, algorithm="HS256")

        async def snapshot() -> dict[str, Any]:
            products = await admin.get("/products", params={"limit": 1})
            state = (await admin.get(f"/livestreams/{stream}")).json()
            async with Api(gateway_url, customer.token) as own:
                role = (await own.get("/auth/me")).json()["user"]["role"]
            return {
                "products": products.headers["X-Total-Count"],
                "status": state["status"],
                "pinned": state["pinnedProducts"],
                "moderation": (await admin.get(f"/livestreams/{stream}/moderation")).json(),
                "customer role": role,
            }

        before = await snapshot()
        assert before["customer role"] == "customer" and before["status"] == "live"
        calls: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", "/analytics/daily", None),
            ("GET", "/auth/me", None),
            ("POST", "/products", {"name": f"forged {uuid.uuid4().hex[:6]}", "price": "1.00", "stock": 1}),
            ("PATCH", f"/users/{customer.id}/role", {"role": "admin"}),
            ("POST", f"/livestreams/{stream}/pin", {"productId": product["id"]}),
            ("PUT", f"/livestreams/{stream}/moderation/slow-mode", {"seconds": 30}),
            ("POST", f"/livestreams/{stream}/stop", None),
        ]
        failures: list[str] = []
        for name, token in tokens.items():
            async with Api(gateway_url, token) as forger:
                for method, path, body in calls:
                    r = await forger.request(method, path, json=body) if body else await forger.request(method, path)
                    if r.status_code != 401 or r.json().get("status") != 401 or not r.json().get("message"):
                        failures.append(f"REST {method} {path} with {name}: {r.status_code} {r.text[:200]}")
        assert not failures, "\n".join(failures)

        room = Room(ws_url, stream)
        try:
            viewer = await room.open("jwt-viewer")
            sentinel_sender = await room.open("jwt-control", admin.token)
            for name, token in tokens.items():
                # `register` with the token: a guest, told why.
                guest = await room.open(None)
                answers = await until_pong_after(
                    guest,
                    {
                        "type": "register",
                        "sessionId": f"jwt-{uuid.uuid4().hex[:6]}",
                        "streamId": stream,
                        "token": token,
                    },
                )
                registered = [f for f in answers if f.get("type") == "registered"]
                codes = [f.get("code") for f in answers if f.get("type") == "error"]
                if [r["authenticated"] for r in registered] != [False] or codes != [
                    "token_expired" if name == "expired" else "invalid_token"
                ]:
                    failures.append(f"WS register with {name}: {answers}")
                # `register_admin` with it, on another connection: refused.
                pretender = await room.open(None)
                answers = await until_pong_after(pretender, {"type": "register_admin", "userId": "x", "token": token})
                if [(f["type"], f.get("code")) for f in answers] != [("error", "invalid_token")]:
                    failures.append(f"WS register_admin with {name}: {answers}")
                # Then admin and moderator frames from both: refused, and no viewer sees a thing.
                seen = len(viewer.frames)
                for client in (guest, pretender):
                    for frame in (
                        {"type": "pin_product", "productId": product["id"], "streamId": stream},
                        {"type": "set_slow_mode", "seconds": 30, "streamId": stream},
                        {"type": "mute_user", "sessionId": "jwt-viewer", "streamId": stream},
                        {"type": "stop_stream", "streamId": stream},
                    ):
                        answers = await until_pong_after(client, frame)
                        if [(f["type"], f.get("code")) for f in answers] != [("error", "forbidden")]:
                            failures.append(f"WS {frame['type']} after {name}: {answers}")
                leaked = await room.leaks(sentinel_sender, viewer, seen)
                if leaked:
                    failures.append(f"WS with {name}: the viewer got {leaked}")
            assert not failures, "\n".join(failures)
            assert await snapshot() == before

            # The control: the same forging with nothing changed is an admin, on both paths.
            async with Api(gateway_url, control) as real:
                assert (await real.get("/analytics/daily")).status_code == 200
            answers = await until_pong_after(await room.open(None), {"type": "register_admin", "token": control})
            assert [f["type"] for f in answers][:1] == ["admin_registered"], answers
            guest = await room.open(None)
            answers = await until_pong_after(
                guest, {"type": "register", "sessionId": "jwt-real", "streamId": stream, "token": control}
            )
            assert [f["authenticated"] for f in answers if f["type"] == "registered"] == [True], answers
            await guest.send({"type": "set_slow_mode", "seconds": 30, "streamId": stream})
            await viewer.wait_type("moderation_updated", slowModeSeconds=30)
        finally:
            await room.close()
        await admin.post(f"/livestreams/{stream}/stop")


async def test_a_token_that_expires_while_connected_stops_giving_rights(gateway_url: str, ws_url: str) -> None:
    """An admin's token valid for a few seconds: while it is valid, its connections moderate and
    pin; once it has expired, the same connections are refused (`token_expired`) and a viewer
    sees nothing, as REST refuses the token (401)."""
    lifetime = 10  # long enough for the proof before it expires on a busy machine
    async with Api(gateway_url, await admin_token(gateway_url)) as admin:
        await stop_all_live(admin)
        admin_user = (await admin.get("/auth/me")).json()["user"]
        product = await new_product(admin, price="3.00")
        stream = await new_stream(admin, "jwt expiry", live=True)
        now = int(time.time())
        short = jwt.encode(forged(admin_user, iat=now, exp=now + lifetime), JWT_SECRET, algorithm="HS256")
        room = Room(ws_url, stream)
        try:
            viewer = await room.open("expiry-viewer")
            sentinel_sender = await room.open("expiry-control", admin.token)
            moderating = await room.open("expiry-moderator", short)
            admin_app = await room.open(None, short, admin=True)
            # While valid: both connections act.
            await moderating.send({"type": "set_slow_mode", "seconds": 5, "streamId": stream})
            await viewer.wait_type("moderation_updated", slowModeSeconds=5)
            await admin_app.send({"type": "pin_product", "productId": product["id"], "streamId": stream})
            await viewer.wait_for(lambda f: f.get("type") == "pinned_products_updated" and bool(f["pinnedProducts"]))
            assert time.time() < now + lifetime, "the proof took longer than the token's life"
            # Once expired (JWT `exp` is in whole seconds: a second more), they no longer do.
            await asyncio.sleep(now + lifetime + 1 - time.time())
            async with Api(gateway_url, short) as expired:
                assert (await expired.get("/analytics/daily")).status_code == 401
            seen = len(viewer.frames)
            failures = []
            for client, frame in (
                (moderating, {"type": "set_slow_mode", "seconds": 0, "streamId": stream}),
                (admin_app, {"type": "set_slow_mode", "seconds": 0, "streamId": stream}),
                (admin_app, {"type": "unpin_product", "productId": product["id"], "streamId": stream}),
                (admin_app, {"type": "stop_stream", "streamId": stream}),
            ):
                answers = await until_pong_after(client, frame)
                if [(f["type"], f.get("code")) for f in answers] != [("error", "token_expired")]:
                    failures.append(f"{frame['type']} after expiry: {answers}")
            leaked = await room.leaks(sentinel_sender, viewer, seen)
            assert not failures and not leaked, (failures, leaked)
            # Its chat is an ordinary viewer's again: not marked as an admin's, held by slow mode.
            for text in ("expired-1", "expired-2"):
                await admin_app.send({"type": "chat_message", "message": text, "streamId": stream})
            await moderating.send({"type": "chat_message", "message": "expired-3", "streamId": stream})
            await moderating.send({"type": "chat_message", "message": "expired-4", "streamId": stream})
            assert (await viewer.wait_type("chat_message", message="expired-1"))["isAdmin"] is False
            slowed = await moderating.wait_for(lambda f: f.get("type") == "error" and f.get("code") == "slow_mode")
            assert slowed["retryAfter"] >= 1
            await admin_app.wait_for(lambda f: f.get("type") == "error" and f.get("code") == "slow_mode")
            settings = (await admin.get(f"/livestreams/{stream}/moderation")).json()
            assert settings["slowModeSeconds"] == 5
            state = (await admin.get(f"/livestreams/{stream}")).json()
            assert state["status"] == "live" and [p["productId"] for p in state["pinnedProducts"]] == [product["id"]]
        finally:
            await room.close()
        await admin.post(f"/livestreams/{stream}/stop")
