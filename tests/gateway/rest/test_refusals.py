"""A stream's refusal as REST answers it: a conflict with its state is 409; a stream that cannot take
the command now (queue full, actor reloading) is 503 with the refusal's Retry-After."""

from __future__ import annotations

import pytest

from core.results import Result
from gateway.rest.refusals import api_error
from gateway.services.stream_commands import refusal


@pytest.mark.parametrize(
    ("result", "status", "retry_after"),
    [
        (Result.rejected("the stream's queue is full", "busy", retryAfter=2), 503, "2"),
        (Result.rejected("the stream is reloading", "internal", retryAfter=1), 503, "1"),
        (Result.rejected("the stream is unavailable", "unavailable", retryAfter=1), 503, "1"),
        (Result.rejected("Slow mode: wait 3 s", "slow_mode", retryAfter=3), 409, "3"),
        (Result.rejected("toggle_like needs a user or a session"), 409, None),
    ],
)
def test_a_streams_refusal_keeps_its_status_and_retry_after(
    result: Result, status: int, retry_after: str | None
) -> None:
    answer = api_error(refusal(result))
    assert answer.status == status
    assert (answer.headers or {}).get("Retry-After") == retry_after
