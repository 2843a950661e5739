"""A service's refusal (`ServiceError`) as a REST answer: the one JSON error
shape of `gateway/errors.py`, with the status its code means here and
`Retry-After` when the same request may succeed later."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from gateway.errors import ApiError, error_body
from gateway.services import errors as refusal
from gateway.services.errors import ServiceError

# Any other code (a stream's own: `rejected`, `slow_mode`, ...) is a conflict with the stream's state: 409.
# A stream that cannot take the command now (its queue full, its actor reloading) is a dependency
# that is down for the moment: 503, with the refusal's Retry-After.
STATUS = {
    "busy": 503,
    refusal.UNAVAILABLE: 503,
    "internal": 503,
    refusal.NOT_FOUND: 404,
    refusal.INVALID: 422,
    refusal.FORBIDDEN: 403,
    refusal.NOT_LIVE: 409,
    refusal.CONFLICT: 409,
}


def status_of(e: ServiceError) -> int:
    return STATUS.get(e.code, 409)


def api_error(e: ServiceError, status: int | None = None) -> ApiError:
    """The answer for `e`; `status` overrides the usual one for the code (a route's own reading)."""
    headers = {"Retry-After": str(e.retry_after)} if e.retry_after is not None else None
    return ApiError(status or status_of(e), e.message, headers=headers)


async def handle(_: Request, e: Exception) -> JSONResponse:
    """The application's handler for `ServiceError` (installed in `gateway/app.py`)."""
    assert isinstance(e, ServiceError)
    answer = api_error(e)
    return JSONResponse(
        error_body(answer.status, answer.message, answer.code), status_code=answer.status, headers=answer.headers
    )
