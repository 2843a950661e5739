"""Client operation ids: a client's resend of the same operation is applied once.

A chat message or a like may carry the sender's own id for it. The first
result is remembered per (sender, id), for the last `CLIENT_IDS_KEPT`
operations, and a resend gets that result back without being applied again.
"""

from __future__ import annotations

from core.limits import CLIENT_IDS_KEPT
from core.results import Result
from core.state import StreamState


def seen(state: StreamState, sender: str | None, client_id: str | None) -> Result | None:
    """The first result of a client operation already applied, if any."""
    if not client_id:
        return None
    done = state.client_ops.get(f"{sender}\x00{client_id}")
    return None if done is None else Result(ok=True, seq=done[0], data=done[1])


def remember(state: StreamState, sender: str | None, client_id: str | None, result: Result) -> Result:
    """Remember `result` as the answer to (sender, client id), if there is an id; returns it."""
    if client_id:
        state.client_ops[f"{sender}\x00{client_id}"] = [result.seq, result.data]
        while len(state.client_ops) > CLIENT_IDS_KEPT:
            state.client_ops.popitem(last=False)
    return result
