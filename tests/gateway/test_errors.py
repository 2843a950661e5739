"""The error mapping: database failures answer JSON 503 + Retry-After, anything
unexpected a JSON 500; never a plain-text 500."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pymongo.errors import NetworkTimeout, ServerSelectionTimeoutError

from gateway import errors


def _app() -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/timeout")
    async def timeout() -> None:
        raise NetworkTimeout("timed out")

    @app.get("/no-server")
    async def no_server() -> None:
        raise ServerSelectionTimeoutError("no server")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail")

    return app


def test_database_errors_answer_json_503_with_retry_after() -> None:
    client = TestClient(_app(), raise_server_exceptions=False)
    for path in ("/timeout", "/no-server"):
        r = client.get(path)
        assert r.status_code == 503
        assert r.headers["Retry-After"] == str(errors.DATABASE_RETRY_AFTER_S)
        assert r.json() == {
            "error": "database_unavailable",
            "message": "The database did not answer in time; try again shortly",
            "status": 503,
        }


def test_unexpected_errors_answer_json_500_without_detail() -> None:
    client = TestClient(_app(), raise_server_exceptions=False)
    r = client.get("/boom")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "internal_error", "message": "Internal error; it has been logged", "status": 500}
    assert "secret" not in r.text
