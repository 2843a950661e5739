"""`ServiceError`: the one way a gateway service refuses a request.

Every service (`pins`, `moderation`, `orders`) raises only this for a request
it will not carry out; each transport maps it once: REST to its JSON error
shape (`gateway/rest/refusals.py`), the WebSocket to an error frame that
carries `code` (`gateway/realtime/ws_session.py`). Anything else a service
raises is a bug or an outage, not a refusal.
"""

from __future__ import annotations

from typing import Any

# The codes a service chooses from; a stream's own refusal keeps the code the
# stream gave it (`slow_mode`, `muted`, ...) or is `rejected`.
NOT_FOUND = "not_found"  # the thing asked for does not exist (or is not the caller's to see)
NOT_LIVE = "not_live"  # the stream exists but is not live
CONFLICT = "conflict"  # well-formed, but conflicts with what is stored now
INVALID = "invalid"  # the request is invalid in itself
FORBIDDEN = "forbidden"  # the caller may not do this
REJECTED = "rejected"  # the stream refused the command without saying more
UNAVAILABLE = "unavailable"  # the stream cannot answer now (storage slow or down, actor restarting): try again


class ServiceError(Exception):
    """A refusal. `str(e)` (and `message`) is fit to show the caller and says
    what to do; `code` is a stable name for it; `retry_after` (seconds) is set
    when the same request may succeed later; `data` is extra detail the stream
    gave (for example `retryAfter` of slow mode), passed on to the client."""

    def __init__(self, code: str, message: str, *, retry_after: int | None = None, **data: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.data = data
