"""Token buckets for the endpoints that invite abuse (logging in, ordering).

In memory, per gateway process: with N gateways a client can get up to N
times the rate by spreading its requests. Good enough to stop a script
hammering one endpoint; not a quota system. Memory is bounded: when more
than `max_keys` buckets exist, the full ones (idle clients) are forgotten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """`rate_per_minute` requests a minute, in bursts of up to that many.
    A rate of 0 or less turns the limit off."""

    rate_per_minute: int
    max_keys: int = 100_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token for `key`. Returns 0.0 if allowed, else the seconds
        until a token is available (for `Retry-After`)."""
        if self.rate_per_minute <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        capacity = float(self.rate_per_minute)
        per_second = capacity / 60.0
        tokens, at = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - at) * per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_keys:
                self._prune(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / per_second

    def _prune(self, now: float) -> None:
        capacity = float(self.rate_per_minute)
        per_second = capacity / 60.0
        for key, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * per_second >= capacity:
                del self._buckets[key]


@dataclass(slots=True)
class RateBucket:
    """One client's token bucket: `rate` tokens a second, holding at most
    `burst`. A rate of 0 or less turns it off. For per-connection WebSocket
    limits, where one bucket belongs to one connection (no key map to bound)."""

    rate: float
    burst: int
    tokens: float = -1.0
    at: float = 0.0

    def take(self, now: float | None = None) -> float:
        """Take one token. Returns 0.0 if allowed, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        capacity = float(max(1, self.burst))
        if self.tokens < 0:
            self.tokens, self.at = capacity, now
        self.tokens = min(capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate
