"""Viewers: distinct by session, across every gateway a session watches through.

A change marks the counters dirty; `core.commit` emits them coalesced, in a
`stream_update`. Joining and leaving are idempotent.
"""

from __future__ import annotations

from core.results import OK, Result
from core.state import StreamState


def join(state: StreamState, gateway_id: str, session_id: str) -> Result:
    gateways = state.viewers.setdefault(session_id, set())
    if not gateways:
        state.total_joins += 1
        state.new_viewers.append(session_id)
    gateways.add(gateway_id)
    state.peak_viewers = max(state.peak_viewers, state.viewer_count)
    state.counters_dirty = True
    return OK


def leave(state: StreamState, gateway_id: str, session_id: str) -> Result:
    gateways = state.viewers.get(session_id)
    if gateways is None:
        return OK  # leaving twice is harmless
    gateways.discard(gateway_id)
    if not gateways:
        del state.viewers[session_id]
    state.counters_dirty = True
    return OK


def sync_viewers(state: StreamState, gateway_id: str, session_ids: tuple[str, ...]) -> Result:
    """Make `session_ids` the complete set of viewers watching through `gateway_id`."""
    wanted = set(session_ids)
    for s in [s for s, gws in state.viewers.items() if gateway_id in gws and s not in wanted]:
        leave(state, gateway_id, s)
    for s in wanted:
        if gateway_id not in state.viewers.get(s, ()):
            join(state, gateway_id, s)
    return OK


def drop_gateway(state: StreamState, gateway_id: str) -> int:
    """Forget every viewer that watched only through `gateway_id` (it died
    or drained). Returns how many viewers left."""
    gone = [s for s, gws in state.viewers.items() if gws == {gateway_id}]
    for s in gone:
        del state.viewers[s]
    for gws in state.viewers.values():
        gws.discard(gateway_id)
    if gone:
        state.counters_dirty = True
    return len(gone)
