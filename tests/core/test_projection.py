"""One projection of events onto a view: a gateway's `StreamView`, fed the
events a stream publishes (encoded, then decoded, as a gateway receives them),
shows exactly what the stream's own snapshot shows, after any run of commands."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

from core.commit import CommitInput, apply_commit, stop_stream, take_events
from core.state import StreamMeta, StreamState
from core.stream_view import StreamView
from core.wire import decode, encode_event, pinned_products
from tests.core.strategies import commits

SID = "0123456789abcdef01234567"


def shown(state: StreamState) -> dict[str, Any]:
    """The actor's snapshot as it reaches a gateway (through Ray: a copy), minus
    the moderation settings (for moderators, not part of what a stream shows)."""
    snapshot = orjson.loads(orjson.dumps(state.snapshot()))
    del snapshot["moderation"]
    return dict(snapshot)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=commits(), resets=st.sets(st.integers(0, 12)), stop=st.booleans())
def test_a_gateway_view_fed_the_events_shows_the_actors_snapshot(
    run: list[CommitInput], resets: set[int], stop: bool
) -> None:
    state = StreamState(meta=StreamMeta(stream_id=SID, title="Sale", quality="hd"), epoch="e1")
    gateway = StreamView(SID)
    gateway.reset(shown(state))
    for i, commit in enumerate(run):
        _, events = apply_commit(state, commit)
        if stop and i == len(run) - 1:
            stop_stream(state)
            events += take_events(state, commit.clock + 1.0)
        for event in events:
            gateway.apply(decode(encode_event(SID, state.epoch, event)))
        assert gateway.snapshot() == shown(state)
        if i in resets:  # a gateway that lost track starts again from the snapshot
            gateway.reset(shown(state))
            assert gateway.snapshot() == shown(state)
    if not (state.counters_dirty or state.sales_dirty):  # every change shown: the view is the state's numbers
        data = state.stream_data()
        assert (data["viewerCount"], data["likes"], set(data["likedBy"])) == (
            state.viewer_count,
            state.likes,
            set(state.liked_by),
        )
        assert data["flashSales"] == state.flash_sale_list() and data["pinnedProducts"] == pinned_products(
            state.pinned_list()
        )
        assert data["slowModeSeconds"] == state.slow_mode
        assert state.snapshot()["chat"] == [c.to_wire() for c in state.recent_chat]
        assert state.snapshot()["chatCount"] == state.chat_count
