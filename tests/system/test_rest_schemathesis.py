"""Schemathesis against the OpenAPI document of a real gateway, as an anonymous
user, a customer and an admin, with its default checks (server errors, status
codes, content types, headers, response schemas, negative data rejection,
ignored auth...): zero failures.

It runs on a gateway of its own (own Ray namespace, so its own registry, and
own database), so whatever the fuzzer creates or deletes touches no other test.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import DatabaseServer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, Process, start_gateway

pytestmark = pytest.mark.system

MAX_EXAMPLES = 5


@pytest.fixture(scope="module")
def isolated_gateway(ray_cluster: str, embedded_db: DatabaseServer, namespace: str, log_dir: Path) -> Iterator[str]:
    proc: Process
    proc, url = start_gateway(
        ray_cluster,
        embedded_db.uri,
        f"{namespace}-st",
        log_dir,
        db_name="schemathesis",
        env_overrides={"LOGIN_RATE_PER_MINUTE": "0", "ORDER_RATE_PER_MINUTE": "0"},
    )
    yield url
    proc.terminate()


def tokens(url: str) -> dict[str, str | None]:
    with httpx.Client(base_url=url, timeout=30) as http:
        admin = http.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).json()["token"]
        r = http.post("/auth/register", json={"email": "fuzz-customer@example.com", "password": "fuzz-password-1"})
        if r.status_code == 409:
            r = http.post("/auth/login", json={"email": "fuzz-customer@example.com", "password": "fuzz-password-1"})
        customer = r.json()["token"]
        # Something to point at: a live stream with a pinned product.
        auth = {"Authorization": f"Bearer {admin}"}
        sid = http.post("/livestreams", json={"title": "Schemathesis"}, headers=auth).json()["id"]
        http.post(f"/livestreams/{sid}/start", headers=auth)
    return {"anonymous": None, "customer": customer, "admin": admin}


@pytest.mark.parametrize("role", ["anonymous", "customer", "admin"])
def test_openapi_fuzzing_finds_nothing(isolated_gateway: str, role: str, tmp_path: Path) -> None:
    token = tokens(isolated_gateway)[role]
    args = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{isolated_gateway}/openapi.json",
        # One worker: Schemathesis' workers are threads, and on CPython 3.11 concurrent `ast.parse` calls
        # (Hypothesis describing its filters) can fail with "SystemError: AST constructor recursion depth
        # mismatch" (python/cpython#106905), an error of the tool, not of the API.
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "42",
        "--workers",
        "1",
        "--no-color",
        "--generation-database",
        "none",
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "20",
        "--suppress-health-check",
        "all",
        "--max-time",
        "20",
    ]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-15000:] + done.stderr[-3000:]
    print(role, done.stdout[done.stdout.rfind("Test cases:") :].strip())  # shown with `pytest -rP`
