"""Password hashing and the JWTs the gateway trusts (and the many it must not)."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import orjson
import pytest

from gateway.security.credentials import (
    ALGORITHM,
    AUDIENCE,
    ISSUER,
    Claims,
    InvalidToken,
    TokenService,
    hash_password,
    verify_password,
)

SECRET = "s3cret-for-tests-" + "0123456789abcdef" * 3  # >= 64 bytes: long enough for HS512 too
OTHER_SECRET = "another-secret-" + "fedcba9876543210" * 3


@pytest.fixture(scope="module")
def tokens() -> TokenService:
    return TokenService(SECRET, ttl_seconds=3600)


_DROP = object()  # a claim value meaning "leave this claim out"


def payload(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "u1",
        "role": "customer",
        "email": "a@b.c",
        "name": "Ann",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not _DROP}


def signed(algorithm: str = ALGORITHM, secret: str = SECRET, **overrides: Any) -> str:
    return jwt.encode(payload(**overrides), secret, algorithm=algorithm)


def rejected(tokens: TokenService, token: object) -> str:
    with pytest.raises(InvalidToken) as info:
        tokens.verify(token)
    return str(info.value)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


class TestPasswords:
    def test_hash_and_verify(self) -> None:
        h = hash_password("correct horse")
        assert h != "correct horse"
        assert h.startswith("$argon2id$")
        assert verify_password("correct horse", h) is True
        assert verify_password("wrong horse", h) is False
        assert verify_password("", h) is False

    def test_hashes_are_salted(self) -> None:
        a, b = hash_password("same"), hash_password("same")
        assert a != b
        assert verify_password("same", a) and verify_password("same", b)

    @pytest.mark.parametrize("garbage", ["", "not a hash", "$argon2id$v=19$broken", "$2b$12$short"])
    def test_verify_against_garbage_is_false_not_an_error(self, garbage: str) -> None:
        assert verify_password("anything", garbage) is False


class TestRoundTrip:
    def test_issue_then_verify(self, tokens: TokenService) -> None:
        token = tokens.issue("u42", "admin", "root@example.com", "Root")
        claims = tokens.verify(token)
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        assert claims == Claims(user_id="u42", role="admin", email="root@example.com", name="Root", expires_at=exp)
        assert claims.is_admin

    def test_claims_expire_with_their_token(self, tokens: TokenService) -> None:
        claims = tokens.verify(tokens.issue("u1", "moderator", "m@example.com", "M"))
        assert claims.expires_at is not None and 3590 <= claims.expires_at - time.time() <= 3600
        assert not claims.expired()
        assert not claims.expired(now=claims.expires_at - 1)
        assert claims.expired(now=claims.expires_at)
        assert not Claims(user_id="u", role="admin", email="", name="").expired(now=2**40)  # made in code

    def test_customer_is_not_admin(self, tokens: TokenService) -> None:
        claims = tokens.verify(tokens.issue("u1", "customer", "c@example.com", "C"))
        assert claims.role == "customer" and not claims.is_admin

    def test_issued_token_is_pinned_hs256_with_issuer_audience_and_expiry(self, tokens: TokenService) -> None:
        token = tokens.issue("u1", "customer", "c@example.com", "C")
        assert jwt.get_unverified_header(token)["alg"] == "HS256"
        body = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)
        assert body["sub"] == "u1"
        assert 3590 <= body["exp"] - body["iat"] <= 3600
        assert abs(body["iat"] - time.time()) < 60

    def test_a_hand_built_valid_token_is_accepted(self, tokens: TokenService) -> None:
        assert tokens.verify(signed()).user_id == "u1"

    def test_missing_email_and_name_become_empty(self, tokens: TokenService) -> None:
        claims = tokens.verify(signed(email=_DROP, name=_DROP))
        assert claims.email == "" and claims.name == ""


class TestRejected:
    def test_expired(self) -> None:
        short = TokenService(SECRET, ttl_seconds=-10)
        token = short.issue("u1", "customer", "a@b.c", "A")
        assert rejected(TokenService(SECRET, 3600), token) == "Token expired"

    def test_expired_hand_built(self, tokens: TokenService) -> None:
        past = int(time.time()) - 100
        assert rejected(tokens, signed(iat=past - 10, exp=past)) == "Token expired"

    def test_wrong_secret(self, tokens: TokenService) -> None:
        assert rejected(tokens, signed(secret=OTHER_SECRET)) == "Invalid token"
        other = TokenService(OTHER_SECRET, 3600)
        assert rejected(tokens, other.issue("u1", "admin", "a@b.c", "A")) == "Invalid token"

    def test_alg_none_from_pyjwt(self, tokens: TokenService) -> None:
        token = jwt.encode(payload(role="admin"), None, algorithm="none")
        assert jwt.get_unverified_header(token)["alg"] == "none"
        assert rejected(tokens, token) == "Invalid token"

    @pytest.mark.parametrize("alg", ["none", "None", "NONE"])
    def test_alg_none_by_hand(self, tokens: TokenService, alg: str) -> None:
        token = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(payload(role='admin'))}."
        assert rejected(tokens, token) == "Invalid token"

    def test_hs256_header_with_signature_stripped(self, tokens: TokenService) -> None:
        head, body, _sig = signed(role="admin").split(".")
        assert rejected(tokens, f"{head}.{body}.") == "Invalid token"

    def test_tampered_payload(self, tokens: TokenService) -> None:
        head, _body, sig = signed().split(".")
        assert rejected(tokens, f"{head}.{b64(payload(role='admin'))}.{sig}") == "Invalid token"

    @pytest.mark.parametrize("alg", ["HS384", "HS512"])
    def test_algorithm_swap_with_the_same_secret(self, tokens: TokenService, alg: str) -> None:
        token = signed(algorithm=alg)
        assert jwt.decode(token, SECRET, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER)["sub"] == "u1"
        assert rejected(tokens, token) == "Invalid token"

    @pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud"])
    def test_missing_required_claim(self, tokens: TokenService, claim: str) -> None:
        dropped: dict[str, Any] = {claim: _DROP}
        assert rejected(tokens, signed(**dropped)) == "Invalid token"

    def test_wrong_issuer(self, tokens: TokenService) -> None:
        assert rejected(tokens, signed(iss="someone-else")) == "Invalid token"

    def test_wrong_audience(self, tokens: TokenService) -> None:
        assert rejected(tokens, signed(aud="other-apps")) == "Invalid token"
        assert rejected(tokens, signed(aud=["other-apps"])) == "Invalid token"

    @pytest.mark.parametrize("role", ["superuser", "Admin", "", None, ["admin"], {"$ne": None}, _DROP])
    def test_role_must_be_admin_or_customer(self, tokens: TokenService, role: Any) -> None:
        assert rejected(tokens, signed(role=role)) == "Invalid token"

    @pytest.mark.parametrize("sub", [42, None, {"$gt": ""}])
    def test_subject_must_be_a_string(self, tokens: TokenService, sub: Any) -> None:
        with pytest.raises(InvalidToken):
            tokens.verify(signed(sub=sub))

    @pytest.mark.parametrize("token", [None, 123, b"bytes", {"$ne": None}, ["a.b.c"], ""])
    def test_non_string_or_empty_token(self, tokens: TokenService, token: object) -> None:
        assert rejected(tokens, token) == "Token required"

    @pytest.mark.parametrize("token", ["garbage", "a.b.c", "a.b", "Bearer x.y.z", "...."])
    def test_malformed_token(self, tokens: TokenService, token: str) -> None:
        assert rejected(tokens, token) == "Invalid token"
