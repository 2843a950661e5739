"""One JSON error shape for every REST answer that is not a success:

    {"error": "<code>", "message": "<what went wrong and what to do>", "status": <http status>}

Validation errors add `details` (where and what). No handler ever lets a
client's bad input become a 500. A call to an actor that brought no answer
(`actors.call_policy.ActorCallError`) is answered with the status, `error`
code and `Retry-After` the error carries (503 and `Retry-After` while an
actor restarts or is slow, so clients know to come back). A database
outage or timeout (any `PyMongoError` reaching a route) is answered 503 with
`Retry-After`; any other unexpected exception is logged with its traceback and
answered as a JSON 500, never plain text.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from actors.call_policy import ActorCallError

log = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_S = 5  # about one database timeout budget: come back once it has had a chance to answer

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    where: str
    problem: str


class ErrorOut(BaseModel):
    """Every error answer (documented on every operation in the OpenAPI document)."""

    error: str
    message: str
    status: int
    details: list[ErrorDetail] | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": CODES[status].replace("_", " ")}
    for status in (400, 401, 403, 404, 405, 409, 422, 429, 503)
}
# Every 429 says when to come back (rate limits, the password pool): documented, so a client and
# Schemathesis' header check can rely on it.
ERROR_RESPONSES[429]["headers"] = {
    "Retry-After": {
        "description": "whole seconds to wait before trying again",
        "required": True,
        "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
    }
}


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or CODES.get(status, "error")
        self.headers = headers


def error_body(status: int, message: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": code or CODES.get(status, "error"), "message": message, "status": status, **extra}


def database_unavailable(e: PyMongoError) -> JSONResponse:
    """A database outage or timeout, as a client sees it: 503, JSON, Retry-After."""
    log.warning("database unavailable: %s: %s", type(e).__name__, e)
    message = "The database did not answer in time; try again shortly"
    return JSONResponse(
        error_body(503, message, "database_unavailable"),
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def internal_error(request: Request, e: Exception) -> JSONResponse:
    """Anything unexpected: logged with its traceback, answered as a JSON 500 that leaks nothing."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=e)
    return JSONResponse(error_body(500, "Internal error; it has been logged"), status_code=500)


def install(app: FastAPI) -> None:
    @app.exception_handler(PyMongoError)
    async def _database_error(_: Request, e: PyMongoError) -> JSONResponse:
        return database_unavailable(e)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        return internal_error(request, e)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, e: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else {}
        headers.update(e.headers or {})
        return JSONResponse(error_body(e.status, e.message, e.code), status_code=e.status, headers=headers)

    @app.exception_handler(ActorCallError)
    async def _actor_call_error(_: Request, e: ActorCallError) -> JSONResponse:
        return JSONResponse(error_body(e.status, e.message, e.code), status_code=e.status, headers=e.headers())

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(e, "headers", None) or {})
        if e.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        return JSONResponse(error_body(e.status_code, str(e.detail)), status_code=e.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, e: RequestValidationError) -> JSONResponse:
        details = [
            {"where": ".".join(str(p) for p in err.get("loc", ())), "problem": err.get("msg", "")} for err in e.errors()
        ]
        first = details[0] if details else {"where": "request", "problem": "invalid"}
        message = f"Invalid request: {first['where']}: {first['problem']}"
        return JSONResponse(error_body(422, message, details=details), status_code=422)


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route serves at this path (a 405's `Allow`): Starlette
    names only the first route that matched the path, FastAPI has one per method."""
    from starlette.routing import Match, Route

    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**scope, "method": next(iter(route.methods))})
            if match == Match.FULL:
                methods |= route.methods
    return sorted(methods)
