"""The gateway's defences that need no server: the operator guard, per-connection
buckets, the origin allow-list, the address counter, token rotation and critical
headers, secrets in settings, and deletions in the stream view."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from core.stream_view import StreamView
from gateway.app import AddressCounter, origin_allowed
from gateway.realtime.protocol import ProtocolError, parse_frame
from gateway.security.credentials import ALGORITHM, AUDIENCE, ISSUER, InvalidToken, TokenService
from gateway.security.guard import find_operator, operator_message
from gateway.security.ratelimit import RateBucket
from runtime.settings import ConfigError, Settings

SECRET = "current-secret-" + "a" * 40
OLD = "previous-secret-" + "b" * 40
STREAM = "0123456789abcdef01234567"
OPERATORS: list[Any] = [{"$gt": ""}, {"$ne": None}, {"$where": "sleep(1000)"}, {"$regex": ".*"}, [{"$in": [1]}]]


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "u1", "role": "customer", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60, **extra}


class TestOperatorGuard:
    @pytest.mark.parametrize("value", OPERATORS)
    def test_operators_anywhere_are_found(self, value: Any) -> None:
        assert find_operator({"a": {"b": [1, {"c": value}]}}) is not None
        assert operator_message({"note": value}) is not None

    def test_bodies_are_scanned_along_their_model(self) -> None:
        from pydantic import BaseModel

        class Item(BaseModel):
            productId: str
            note: Any = None

        class Body(BaseModel):
            items: list[Item]
            title: str | None = None

        assert operator_message({"items": [{"productId": {"$ne": None}}]}, Body) is not None
        assert operator_message({"items": [{"productId": "p", "note": {"$where": "1"}}]}, Body) is not None
        assert operator_message({"title": {"$gt": ""}}, Body) is not None
        # Fields the model does not declare are dropped unread: not refused.
        assert operator_message({"items": [{"productId": "p", "$x": 1}], "extra": {"$gt": ""}}, Body) is None

    def test_dollar_in_text_is_just_text(self) -> None:
        assert find_operator({"message": "$gt costs $5", "items": ["$ne"]}) is None

    def test_too_deep_is_refused(self) -> None:
        deep: Any = "x"
        for _ in range(40):
            deep = {"a": deep}
        assert "deeper" in (operator_message(deep) or "")

    @pytest.mark.parametrize("value", OPERATORS)
    def test_frames_with_operators_in_ignored_fields_are_refused(self, value: Any) -> None:
        import orjson

        for frame in (
            {"type": "chat_message", "message": "hi", "isAdmin": value},
            {"type": "chat_message", "message": "hi", "timestamp": value},
            {"type": "ping", "extra": value},
        ):
            with pytest.raises(ProtocolError) as info:
                parse_frame(orjson.dumps(frame))
            assert "not allowed" in str(info.value)


class TestRateBucket:
    def test_burst_then_rate(self) -> None:
        bucket = RateBucket(rate=5, burst=10)
        assert all(bucket.take(100.0) == 0.0 for _ in range(10))
        wait = bucket.take(100.0)
        assert 0.19 < wait <= 0.2
        assert bucket.take(100.2) == 0.0

    def test_zero_rate_is_off(self) -> None:
        bucket = RateBucket(rate=0, burst=1)
        assert all(bucket.take(1.0) == 0.0 for _ in range(1000))


class TestConnectionsAndOrigins:
    def test_address_counter_refuses_beyond_the_limit_and_releases(self) -> None:
        counter = AddressCounter(2)
        assert counter.acquire("1.2.3.4") and counter.acquire("1.2.3.4")
        assert not counter.acquire("1.2.3.4")
        assert counter.acquire("5.6.7.8")
        counter.release("1.2.3.4")
        assert counter.acquire("1.2.3.4")

    def test_origin_allow_list(self) -> None:
        allowed = Settings(ALLOWED_ORIGINS="https://shop.example, https://admin.example/").origin_allow_list()
        assert origin_allowed(allowed, "https://shop.example")
        assert origin_allowed(allowed, "HTTPS://ADMIN.EXAMPLE")
        assert not origin_allowed(allowed, "https://evil.example")
        assert origin_allowed(allowed, None)  # native apps send no Origin
        assert origin_allowed(frozenset(), "https://anything.example")


class TestTokens:
    def test_unknown_critical_header_is_refused(self) -> None:
        tokens = TokenService(SECRET, 60)
        token = jwt.encode(claims(), SECRET, algorithm=ALGORITHM, headers={"crit": ["exp"], "exp": 1})
        with pytest.raises(InvalidToken):
            tokens.verify(token)
        token = jwt.encode(claims(), SECRET, algorithm=ALGORITHM, headers={"crit": []})
        with pytest.raises(InvalidToken):
            tokens.verify(token)

    def test_rotation_accepts_previous_secrets_and_signs_with_the_current_one(self) -> None:
        old_token = TokenService(OLD, 60).issue("u1", "customer", "a@b.c", "A")
        rotating = TokenService(SECRET, 60, previous_secrets=(OLD,))
        assert rotating.verify(old_token).user_id == "u1"
        new_token = rotating.issue("u2", "customer", "b@b.c", "B")
        assert jwt.get_unverified_header(new_token)["alg"] == ALGORITHM
        assert TokenService(SECRET, 60).verify(new_token).user_id == "u2"
        with pytest.raises(InvalidToken):
            TokenService(SECRET, 60).verify(old_token)  # once the old secret is removed

    def test_an_expired_token_is_refused_even_with_a_previous_secret(self) -> None:
        expired = jwt.encode(claims(exp=int(time.time()) - 5), OLD, algorithm=ALGORITHM)
        with pytest.raises(InvalidToken, match="expired"):
            TokenService(SECRET, 60, previous_secrets=(OLD,)).verify(expired)

    def test_moderator_role(self) -> None:
        tokens = TokenService(SECRET, 60)
        c = tokens.verify(tokens.issue("m1", "moderator", "m@b.c", "M"))
        assert c.can_moderate and not c.is_admin

    def test_short_previous_secret_and_non_positive_ttl_are_refused(self) -> None:
        with pytest.raises(ConfigError):
            Settings(JWT_PREVIOUS_SECRETS="short").previous_jwt_secrets()
        assert Settings(JWT_PREVIOUS_SECRETS=f"{OLD}, {SECRET}").previous_jwt_secrets() == (OLD, SECRET)
        with pytest.raises(ValueError):
            Settings(JWT_TTL_SECONDS=0)

    def test_short_secret_is_refused(self) -> None:
        with pytest.raises(ConfigError):
            Settings(JWT_SECRET="x" * 31).resolved_jwt_secret()


class TestStreamViewDeletions:
    def test_a_deleted_message_leaves_the_join_history(self) -> None:
        view = StreamView(STREAM)
        view.reset(
            {
                "seq": 2,
                "epoch": "e",
                "streamData": {},
                "chat": [
                    {"id": 1, "seq": 1, "username": "a", "message": "ok", "isAdmin": False, "timestamp": "t"},
                    {"id": 2, "seq": 2, "username": "b", "message": "spam", "isAdmin": False, "timestamp": "t"},
                ],
            }
        )
        view.join_frames()
        view.apply({"type": "chat_message_deleted", "messageId": 2, "seq": 3})
        view.apply({"type": "moderation_updated", "slowModeSeconds": 5, "blockedWords": 0, "seq": 4})
        assert [m["seq"] for m in view.chat] == [1]
        assert '"spam"' not in view.join_frames()[-1]
        assert view.public()["slowModeSeconds"] == 5


class TestRedaction:
    def test_registered_secrets_are_masked_in_logs(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import io
        import logging
        import sys

        import structlog

        from runtime.logs import add_secrets, configure, uri_password

        stream = io.StringIO()
        monkeypatch.setattr(sys, "stderr", stream)

        password = uri_password("mongodb://wren:p%40ss-w0rd-xyz@db:27017/?tls=true")
        assert password == "p@ss-w0rd-xyz"
        assert uri_password("mongodb://db:27017") is None
        add_secrets([password, "agora-cert-0123456789"])
        configure("info", "json")
        structlog.get_logger("t").error(
            "failed", uri="mongodb://wren:p@ss-w0rd-xyz@db", error=ValueError("agora-cert-0123456789")
        )
        logging.getLogger("t").error("connect to mongodb://wren:%s@db failed", password)
        err = stream.getvalue()
        monkeypatch.undo()
        configure("info", "json")  # back to the real stderr
        assert "p@ss-w0rd-xyz" not in err and "agora-cert-0123456789" not in err
        assert err.count("***") >= 3
