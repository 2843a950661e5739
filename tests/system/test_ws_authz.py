"""The WebSocket authorisation matrix: every admin and moderator frame x every
role, against a live gateway, derived from one table that states the policy
(`ACCESS`: one line per frame type, so a change of policy is a one-line diff).

The roles: a guest (`register` without a token), a customer and a moderator
(`register` with their token), an admin's token on a plain `register`, and an
admin connection (`register_admin`). A refused frame is answered with an
error frame carrying its `code`, and nothing reaches anyone else: a viewer of
the stream sees only the sentinel message sent after it (events are ordered,
so anything the refused frame caused would come first). An allowed frame takes
effect: the viewer sees its event. Every attempt targets something of its own
(a message, a viewer, a stream) whose change would show, so a refusal is never
judged on a frame that would have changed nothing anyway. At the end the
stored state says the same: only the allowed roles' changes are there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.realtime.protocol import FRAME_TYPES
from tests.support.clients import Api, Frame, WsClient, register_customer
from tests.system.rest_support import admin_token, email, new_customer, new_product, new_stream, stop_all_live
from tests.system.test_rest_authz import new_moderator

pytestmark = pytest.mark.system

# `admin-token`: an admin's token on a plain `register` (a viewer who may moderate);
# `admin`: a connection that sent `register_admin` with it (the admin app).
ROLES = ("guest", "customer", "moderator", "admin-token", "admin")

# Who may send a frame at each level, in the order of ROLES.
LEVELS: dict[str, tuple[bool, bool, bool, bool, bool]] = {
    "moderator": (False, False, True, True, True),
    "admin": (False, False, False, False, True),
    "admin's token": (False, False, False, True, True),
}

# The policy: the level of every privileged frame.
ACCESS: dict[str, str] = {
    "register_admin": "admin's token",
    "start_stream": "admin",
    "stop_stream": "admin",
    "pin_product": "admin",
    "unpin_product": "admin",
    "delete_message": "moderator",
    "mute_user": "moderator",
    "unmute_user": "moderator",
    "set_blocked_words": "moderator",
    "set_slow_mode": "moderator",
}
OPEN = {"register", "join_stream", "leave_stream", "chat_message", "toggle_like", "ping"}  # anyone's


@dataclass
class Case:
    """One frame of the matrix, sent by each role in the order of ROLES. `frame(role)` is that
    role's frame (aimed at a target of its own); `effect(role)` matches the event a viewer
    gets when that role's frame took effect."""

    label: str
    frame: Callable[[str], dict[str, Any]]
    effect: Callable[[str], Callable[[Frame], bool]]

    @property
    def type(self) -> str:
        return str(self.frame("guest")["type"])

    def allowed(self, role: str) -> bool:
        return LEVELS[ACCESS[self.type]][ROLES.index(role)]


def event(type_: str, **fields: Any) -> Callable[[Frame], bool]:
    return lambda f: f.get("type") == type_ and all(f.get(k) == v for k, v in fields.items())


def pins(f: Frame) -> set[str]:
    return {p["productId"] for p in f.get("pinnedProducts", [])}


async def until_pong(client: WsClient, start: int) -> list[Frame]:
    """The frames `client` got from `start` until the `pong` of the ping sent after its frame:
    the answers to that frame (frames of one connection are handled in order)."""
    await client.send({"type": "ping"})
    pong = await client.wait_for(lambda f: f.get("type") == "pong", start=start)
    return client.frames[start : client.frames.index(pong, start)]


class Room:
    """The connections of the matrix: a viewer that only watches, a control connection
    that sends sentinel messages (an admin's token on `register`, so slow mode and blocked
    words do not hold it up), a spammer, and one connection per role."""

    def __init__(self, ws_url: str, stream: str) -> None:
        self.ws_url, self.stream = ws_url, stream
        self.clients: list[WsClient] = []
        self.sentinels = 0

    async def open(self, session: str | None, token: str | None = None, admin: bool = False) -> WsClient:
        client = WsClient(self.ws_url)
        await client.__aenter__()
        self.clients.append(client)
        if admin:
            await client.send({"type": "register_admin", "userId": "admin", "token": token})
            await client.wait_type("admin_registered")
        elif session is not None:
            frame = {"type": "register", "sessionId": session, "streamId": self.stream}
            if token is not None:
                frame["token"] = token
            await client.send(frame)
            await client.wait_type("chat_history")
            assert not client.of_type("error"), client.frames
        return client

    async def sentinel(self, control: WsClient, viewer: WsClient) -> Frame:
        """A chat message from `control`, as `viewer` gets it (resent when rate limited)."""
        self.sentinels += 1
        text = f"sentinel-{self.sentinels}"
        for _ in range(10):
            start = len(control.frames)
            await control.send({"type": "chat_message", "message": text, "clientMsgId": text, "streamId": self.stream})
            answer = await control.wait_for(lambda f: f.get("clientMsgId") == text, start=start)
            if answer["type"] == "ack":
                return await viewer.wait_type("chat_message", message=text)
            assert answer.get("code") == "rate_limited", answer
            await viewer.settle(float(answer.get("retryAfter", 1)))
        raise AssertionError("the sentinel message was refused ten times")

    async def leaks(self, control: WsClient, viewer: WsClient, seen: int) -> list[Frame]:
        """What `viewer` got from index `seen` up to a sentinel sent now, but viewer counts:
        they move with the matrix's own joins, coalesced, so one may come late (nobody likes
        here, so a `stream_update` with no like is only that)."""
        mark = await self.sentinel(control, viewer)
        got = viewer.frames[seen : viewer.frames.index(mark, seen)]
        return [f for f in got if not (f.get("type") == "stream_update" and f["likes"] == 0 and f["likedBy"] == [])]

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


async def test_every_privileged_frame_against_every_role(gateway_url: str, ws_url: str) -> None:
    assert set(ACCESS) | OPEN == set(FRAME_TYPES) and not set(ACCESS) & OPEN, "a frame type without a policy"
    admin = Api(gateway_url, await admin_token(gateway_url))
    async with admin:
        await stop_all_live(admin)
        customer = await new_customer(gateway_url, "ws-c")
        moderator_token = await new_moderator(gateway_url, admin)
        to_pin = await new_product(admin, price="7.00")
        pinned = await new_product(admin, price="8.00")
        stream = await new_stream(admin, "ws matrix", live=True)
        target = await new_stream(admin, "ws matrix target")  # started, then stopped, by the admin's frames
        assert (await admin.post(f"/livestreams/{stream}/pin", json={"productId": pinned["id"]})).status_code == 200
        for role in ROLES:  # each role's own viewer to unmute
            r = await admin.post(
                f"/livestreams/{stream}/moderation/mute", json={"sessionId": f"victim-{role}", "durationSeconds": 600}
            )
            assert r.status_code == 200, r.text
        room = Room(ws_url, stream)
        try:
            tokens = {"guest": None, "customer": customer.token, "moderator": moderator_token}
            tokens |= {"admin-token": admin.token, "admin": admin.token}
            viewer = await room.open("ws-matrix-viewer")
            control = await room.open("ws-matrix-control", admin.token)
            spammer = await room.open("ws-matrix-spammer")
            senders = {role: await room.open(f"ws-matrix-{role}", tokens[role], role == "admin") for role in ROLES}
            spam: dict[str, int] = {}  # each role's own message to delete
            for role in ROLES:
                await spammer.send({"type": "chat_message", "message": f"spam-{role}", "streamId": stream})
                spam[role] = (await viewer.wait_type("chat_message", message=f"spam-{role}"))["id"]
            titles = {role: f"ws-matrix-new-{role}-{uuid.uuid4().hex[:6]}" for role in ROLES}
            words = {role: [f"w{i}-{n}" for n in range(i + 1)] for i, role in enumerate(ROLES)}  # counts tell who

            cases = [
                Case(
                    "pin_product",
                    lambda role: {"type": "pin_product", "productId": to_pin["id"], "streamId": stream},
                    lambda role: lambda f: f.get("type") == "pinned_products_updated" and to_pin["id"] in pins(f),
                ),
                Case(
                    "unpin_product",
                    lambda role: {"type": "unpin_product", "productId": pinned["id"], "streamId": stream},
                    lambda role: lambda f: f.get("type") == "pinned_products_updated" and pinned["id"] not in pins(f),
                ),
                Case(
                    "start_stream (a stream created over REST)",
                    lambda role: {"type": "start_stream", "streamId": target},
                    lambda role: event("stream_started", streamId=target),
                ),
                Case(
                    "stop_stream",
                    lambda role: {"type": "stop_stream", "streamId": target},
                    lambda role: event("stream_stopped", streamId=target),
                ),
                Case(
                    "start_stream (a new stream)",
                    lambda role: {"type": "start_stream", "title": titles[role]},
                    lambda role: (
                        lambda f: (
                            f.get("type") == "stream_started" and f.get("streamData", {}).get("title") == titles[role]
                        )
                    ),
                ),
                Case(
                    "delete_message",
                    lambda role: {"type": "delete_message", "messageId": spam[role], "streamId": stream},
                    lambda role: event("chat_message_deleted", messageId=spam[role]),
                ),
                Case(
                    "mute_user",
                    lambda role: {
                        "type": "mute_user",
                        "sessionId": f"mutee-{role}",
                        "durationSeconds": 600,
                        "streamId": stream,
                    },
                    lambda role: event("user_muted", userKey=f"mutee-{role}"),
                ),
                Case(
                    "unmute_user",
                    lambda role: {"type": "unmute_user", "sessionId": f"victim-{role}", "streamId": stream},
                    lambda role: event("user_unmuted", userKey=f"victim-{role}"),
                ),
                Case(
                    "set_blocked_words",
                    lambda role: {"type": "set_blocked_words", "words": words[role], "streamId": stream},
                    lambda role: event("moderation_updated", blockedWords=len(words[role])),
                ),
                Case(
                    "set_slow_mode",
                    lambda role: {"type": "set_slow_mode", "seconds": 10 + ROLES.index(role), "streamId": stream},
                    lambda role: event("moderation_updated", slowModeSeconds=10 + ROLES.index(role)),
                ),
            ]
            assert {c.type for c in cases} == set(ACCESS) - {"register_admin"}

            failures: list[str] = []
            new_streams: list[str] = []
            for case in cases:
                for role in ROLES:
                    sender = senders[role]
                    seen, sent = len(viewer.frames), len(sender.frames)
                    answers = await until_pong_after(sender, case.frame(role))
                    errors = [f for f in answers if f.get("type") == "error"]
                    if case.allowed(role):
                        got = await viewer.wait_for(case.effect(role), start=seen)
                        if got.get("type") == "stream_started" and got["streamId"] != target:
                            new_streams.append(got["streamId"])
                        errors = [
                            f for f in sender.frames[sent:] if f.get("type") == "error"
                        ]  # refusals come when stored
                        if errors:
                            failures.append(f"{case.label} as {role}: allowed, but answered {errors}")
                        continue
                    if [e.get("code") for e in errors] != ["forbidden"] or not errors[0].get("message"):
                        failures.append(f"{case.label} as {role}: refused without one 'forbidden' error: {answers}")
                    leaked = await room.leaks(control, viewer, seen)
                    if leaked:
                        failures.append(f"{case.label} as {role}: the viewer got {leaked}")
            assert not failures, "\n".join(failures)

            # The stored state holds the allowed roles' changes and no one else's.
            allowed = {role for role in ROLES if LEVELS["moderator"][ROLES.index(role)]}
            settings = (await admin.get(f"/livestreams/{stream}/moderation")).json()
            muted = {m["userKey"] for m in settings["muted"]}
            assert muted == {f"mutee-{r}" for r in allowed} | {f"victim-{r}" for r in set(ROLES) - allowed}
            assert settings["slowModeSeconds"] == 10 + ROLES.index("admin")
            assert settings["blockedWords"] == words["admin"]
            chat = (await admin.get(f"/livestreams/{stream}/chat", params={"limit": 100})).json()
            left = {m["message"] for m in chat if m["message"].startswith("spam-")}
            assert left == {f"spam-{r}" for r in set(ROLES) - allowed}
            state = (await admin.get(f"/livestreams/{stream}")).json()
            assert [p["productId"] for p in state["pinnedProducts"]] == [to_pin["id"]]
            assert (await admin.get(f"/livestreams/{target}")).json()["status"] == "ended"
            assert len(new_streams) == 1
            for title in titles.values():
                found = (await admin.get("/livestreams", params={"limit": 100})).json()
                assert sum(s["title"] == title for s in found) == (title == titles["admin"])
            for sid in [stream, *new_streams]:
                await admin.post(f"/livestreams/{sid}/stop")
        finally:
            await room.close()


async def until_pong_after(client: WsClient, frame: dict[str, Any]) -> list[Frame]:
    start = len(client.frames)
    await client.send(frame)
    return await until_pong(client, start)


async def test_register_admin_needs_an_admin_token(gateway_url: str, ws_url: str) -> None:
    """`register_admin` as each role: only an admin's token makes an admin connection;
    the others get an error with its code and stay what they were."""
    async with Api(gateway_url, await admin_token(gateway_url)) as admin:
        customer_token, _ = await register_customer(gateway_url, email("ws-ra"))
        moderator_token = await new_moderator(gateway_url, admin)
        tokens = {"guest": None, "customer": customer_token, "moderator": moderator_token}
        tokens |= {"admin-token": admin.token, "admin": admin.token}
    refusals = {"guest": "token_required", "customer": "forbidden", "moderator": "forbidden"}
    for role in ROLES:
        async with WsClient(ws_url) as ws:
            frame: dict[str, Any] = {"type": "register_admin", "userId": role}
            if tokens[role] is not None:
                frame["token"] = tokens[role]
            answers = await until_pong_after(ws, frame)
            if LEVELS[ACCESS["register_admin"]][ROLES.index(role)]:
                assert [f["type"] for f in answers][:1] == ["admin_registered"], (role, answers)
                assert not [f for f in answers if f["type"] == "error"], (role, answers)
                continue
            assert [(f["type"], f.get("code")) for f in answers] == [("error", refusals[role])], (role, answers)
            # Still not an admin: an admin frame is refused.
            answers = await until_pong_after(ws, {"type": "stop_stream", "streamId": "0" * 24})
            assert [(f["type"], f.get("code")) for f in answers] == [("error", "forbidden")], (role, answers)
