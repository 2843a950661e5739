"""Abuse of `/auth` against a real gateway process: a flood of wrong-password
logins must not stall a watching viewer's socket, a login must cost the same
whether or not the account exists, and sign-ups are limited per address.

The gateway here (`guarded`) runs with a small password pool queue and a small
sign-up limit, so both are reached quickly. The accounts the tests log in to
are made on the session's shared gateway (same database), so they do not spend
the guarded gateway's sign-up limit. Timings are printed (`pytest -s`) and
asserted with generous bounds only.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.clients import Api, WsClient, register_customer
from tests.support.databases import DatabaseServer
from tests.support.processes import Process, start_gateway
from tests.system.rest_support import admin_token, assert_error, email, new_stream

pytestmark = pytest.mark.system

SIGNUP_LIMIT = 5
LIMITS = {
    "SIGNUP_RATE_PER_MINUTE": str(SIGNUP_LIMIT),
    "PASSWORD_HASH_WORKERS": "2",
    "PASSWORD_HASH_QUEUE": "4",  # 8 flooding clients overrun it: some attempts are refused at once
    "LOGIN_RATE_PER_MINUTE": "120",  # per address and email: the flood below stays under it
}
FLOODERS = 8
FLOOD_SECONDS = 6.0
KNOWN_PASSWORD = "the-right-password-1"


@pytest.fixture(scope="module")
def guarded(ray_cluster: str, embedded_db: DatabaseServer, namespace: str, log_dir: Path) -> Iterator[str]:
    proc: Process
    proc, url = start_gateway(
        ray_cluster, embedded_db.uri, namespace, log_dir, db_name=embedded_db.db_name, env_overrides=LIMITS
    )
    yield url
    if proc.alive():
        proc.terminate()


@pytest.fixture(scope="module")
async def watched_stream(guarded: str) -> AsyncIterator[str]:
    async with Api(guarded, await admin_token(guarded)) as admin:
        sid = await new_stream(admin, "Auth abuse", live=True)
        yield sid
        await admin.post(f"/livestreams/{sid}/stop")


async def known_accounts(shared_url: str, n: int) -> list[str]:
    emails = [email("known") for _ in range(n)]
    for address in emails:
        await register_customer(shared_url, address, KNOWN_PASSWORD)
    return emails


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def ping_times(viewer: WsClient, until: float, every: float = 0.05) -> list[float]:
    """Round trips of `ping` → `pong` until `until` (monotonic), in ms."""
    times: list[float] = []
    while time.monotonic() < until:
        start = len(viewer.frames)
        sent = time.monotonic()
        await viewer.send({"type": "ping"})
        await viewer.wait_for(lambda f: f.get("type") == "pong", timeout=10, start=start)
        times.append((time.monotonic() - sent) * 1000)
        await asyncio.sleep(every)
    return times


async def flood(url: str, known: str, until: float, statuses: Counter[int], answers_ms: list[float]) -> None:
    """One attacker: wrong passwords, alternating a real account and made-up
    ones (credential stuffing), as fast as the gateway answers."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        i = 0
        while time.monotonic() < until:
            address = known if i % 2 == 0 else f"nobody-{uuid.uuid4().hex[:10]}@example.com"
            i += 1
            sent = time.monotonic()
            r = await c.post("/auth/login", json={"email": address, "password": "wrong-password"})
            answers_ms.append((time.monotonic() - sent) * 1000)
            statuses[r.status_code] += 1
            if r.status_code == 429:
                assert_error(r, 429)
                assert int(r.headers["Retry-After"]) >= 1
            else:
                assert_error(r, 401)


async def test_a_login_flood_does_not_stall_a_watching_viewer(
    guarded: str, gateway_url: str, watched_stream: str
) -> None:
    known = await known_accounts(gateway_url, FLOODERS)
    async with WsClient(guarded.replace("http://", "ws://") + "/") as viewer:
        await viewer.send({"type": "register", "sessionId": "auth-abuse-viewer", "streamId": watched_stream})
        await viewer.wait_type("chat_history")
        calm = await ping_times(viewer, time.monotonic() + 1.5)

        statuses: Counter[int] = Counter()
        answers_ms: list[float] = []
        until = time.monotonic() + FLOOD_SECONDS
        attackers = [asyncio.create_task(flood(guarded, address, until, statuses, answers_ms)) for address in known]
        await asyncio.sleep(0.3)  # the flood is under way
        under_flood = await ping_times(viewer, until)
        await asyncio.wait_for(asyncio.gather(*attackers), 60)

    print(
        f"\nping calm: p50 {statistics.median(calm):.1f} ms, max {max(calm):.1f} ms ({len(calm)} pings)"
        f"\nping under a flood of {FLOODERS} wrong-password clients: p50 {statistics.median(under_flood):.1f} ms,"
        f" p90 {percentile(under_flood, 0.9):.1f} ms, max {max(under_flood):.1f} ms ({len(under_flood)} pings)"
        f"\nlogin answers: {dict(sorted(statuses.items()))}, p50 {statistics.median(answers_ms):.1f} ms,"
        f" max {max(answers_ms):.1f} ms"
    )
    assert statuses[401] > 0, statuses  # passwords were really checked
    assert statuses[429] > 0, statuses  # and the bounded pool refused what it could not queue
    assert set(statuses) <= {401, 429}, statuses
    assert len(under_flood) >= 20
    # Hashing on the event loop made it 207 ms on a quiet machine (and more on a loaded one); off it,
    # 4 ms quiet, 52 ms with the suite beside a benchmark (load 20), 106 ms with two suites (load 36).
    assert percentile(under_flood, 0.9) < 150, under_flood
    assert max(under_flood) < 1000, under_flood


async def test_b_login_costs_the_same_whether_or_not_the_account_exists(guarded: str, gateway_url: str) -> None:
    (known,) = await known_accounts(gateway_url, 1)
    unknown_ms: list[float] = []
    known_ms: list[float] = []
    async with httpx.AsyncClient(base_url=guarded, timeout=30) as c:
        for i in range(24):
            unknown = i % 2 == 0
            address = f"nobody-{uuid.uuid4().hex[:10]}@example.com" if unknown else known
            sent = time.monotonic()
            r = await c.post("/auth/login", json={"email": address, "password": "wrong-password"})
            (unknown_ms if unknown else known_ms).append((time.monotonic() - sent) * 1000)
            assert_error(r, 401)
        r = await c.post("/auth/login", json={"email": known, "password": KNOWN_PASSWORD})
        assert r.status_code == 200, r.text
    unknown_median, known_median = statistics.median(unknown_ms), statistics.median(known_ms)
    print(
        f"\nlogin median: unknown email {unknown_median:.1f} ms,"
        f" known email with a wrong password {known_median:.1f} ms ({len(known_ms)} each)"
    )
    assert known_median < 2 * unknown_median, (unknown_ms, known_ms)
    assert unknown_median < 2 * known_median, (unknown_ms, known_ms)


async def test_c_sign_ups_beyond_the_limit_get_429_with_retry_after(guarded: str) -> None:
    codes: list[int] = []
    async with httpx.AsyncClient(base_url=guarded, timeout=30) as c:
        for _ in range(SIGNUP_LIMIT):
            r = await c.post("/auth/register", json={"email": email("signup"), "password": "long-enough-1"})
            codes.append(r.status_code)
        assert codes == [201] * SIGNUP_LIMIT, codes
        r = await c.post("/auth/register", json={"email": email("signup"), "password": "long-enough-1"})
        body = assert_error(r, 429)
        assert body["error"] == "too_many_requests"
        assert int(r.headers["Retry-After"]) >= 1
        print(f"\nsign-ups from one address: {SIGNUP_LIMIT} accepted, then {r.status_code} {body['message']!r}")
