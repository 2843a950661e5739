"""Which gateways still hold a stream's viewers.

A gateway renews its lease on a stream each time it polls or submits. One
silent for longer than the lease is taken for dead (its process died, or it
lost the network): its lease expires, and the stream's viewers that watched
only through it leave the count. A gateway heard from again later simply
starts a new lease (and resyncs its viewers).

Pure and deterministic: the caller passes the time (seconds of one monotonic
clock).
"""

from __future__ import annotations


class GatewayLeases:
    """The gateways heard from, and when each was last heard from."""

    __slots__ = ("_seen", "lease")

    def __init__(self, lease: float) -> None:
        self.lease = lease
        self._seen: dict[str, float] = {}

    def renew(self, gateway_id: str, now: float) -> None:
        """`gateway_id` was heard from at `now`."""
        self._seen[gateway_id] = now

    def grant(self, gateway_id: str, now: float) -> None:
        """Give `gateway_id` a lease from `now` unless it already holds one
        (at load: gateways known from the checkpoint get a full lease)."""
        self._seen.setdefault(gateway_id, now)

    def expire(self, now: float) -> list[str]:
        """The gateways last heard from more than `lease` seconds before `now`
        (exactly `lease` ago: still held), in the order first heard; they are
        forgotten."""
        limit = now - self.lease
        gone = [g for g, seen in self._seen.items() if seen < limit]
        for gateway_id in gone:
            del self._seen[gateway_id]
        return gone

    def next_expiry(self) -> float | None:
        """When the first lease held runs out (after it, `expire` returns that
        gateway unless it was heard from again), None if no lease is held."""
        return min(self._seen.values()) + self.lease if self._seen else None

    def holders(self) -> list[str]:
        """The gateways holding a lease, sorted."""
        return sorted(self._seen)
