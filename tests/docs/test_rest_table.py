"""The README's REST endpoint table lists every endpoint a gateway serves, and nothing else.

The endpoints are the gateway's own: the OpenAPI document of an application built in this
process by `gateway.app.create_app` (no server, database or Ray needed to build it), plus the
few pages it serves outside that document, each requested from the same application."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from runtime.settings import Settings
from tests.docs.markdown import ROOT, section, table_rows

# Served, but not operations of the OpenAPI document: the documents and the docs page themselves.
OUTSIDE_OPENAPI = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/asyncapi.json")}


_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _normal(path: str) -> str:
    """A path with its parameters' names left out: `/livestreams/{stream_id}` and
    `/livestreams/{id}` are the same endpoint."""
    return re.sub(r"\{[^}]+\}", "{}", path)


@pytest.fixture(scope="module")
def app() -> FastAPI:
    # Nothing is connected: the application is only built, never started (no lifespan runs).
    return create_app(Settings(), "mongodb://127.0.0.1:9/unused", "x" * 32)


def _served(app: FastAPI) -> set[tuple[str, str]]:
    operations = {
        (method.upper(), _normal(path))
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method.upper() in _METHODS
    }
    return operations | OUTSIDE_OPENAPI


def _listed() -> list[tuple[str, str]]:
    readme = (ROOT / "README.md").read_text()
    rows = table_rows(section(readme, "REST endpoints"))
    listed = []
    for row in rows:
        method, path = (re.fullmatch(r"`([^`]+)`", cell) for cell in row[:2])
        assert method and path and method.group(1) in _METHODS, f"not a `METHOD` | `/path` row: {row}"
        assert len(row) == 4 and all(row[2:]), f"a row needs who may call it and what it does: {row}"
        listed.append((method.group(1), _normal(path.group(1))))
    return listed


def test_every_endpoint_the_gateway_serves_is_in_the_readme(app: FastAPI) -> None:
    missing = _served(app) - set(_listed())
    assert not missing, f"endpoints missing from the README's REST table: {sorted(missing)}"


def test_the_readme_lists_only_endpoints_the_gateway_serves(app: FastAPI) -> None:
    listed = _listed()
    assert len(listed) == len(set(listed)), "an endpoint is listed twice"
    unknown = set(listed) - _served(app)
    assert not unknown, f"the README lists endpoints the gateway does not serve: {sorted(unknown)}"


async def test_the_endpoints_outside_the_openapi_document_are_served(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)  # runs no lifespan: nothing is connected
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=10) as client:
        for method, path in sorted(OUTSIDE_OPENAPI):
            answer = await client.request(method, path)
            assert answer.status_code == 200, f"{method} {path}: {answer.status_code}"
    assert not any(path in app.openapi()["paths"] for _, path in OUTSIDE_OPENAPI)
