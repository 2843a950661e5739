"""Likes: a toggle, once per liker (a user id or a session id).

A toggle changes `liked_by` now and records the net change since the last
`stream_update` (`liked_added`, `liked_removed`: a like and an unlike in the
same interval cancel out); `core.commit` emits the counts and those changes
coalesced, never the whole list. This is the like storm's path (tens of
thousands of taps a second): no event, no allocation per tap.
"""

from __future__ import annotations

from core.results import Result
from core.rules.client_ops import remember, seen
from core.state import StreamState


def toggle_like(state: StreamState, liker: str, client_id: str | None = None) -> Result:
    """Like, or unlike if already liked; a resend of the same client id is applied once."""
    if not liker:
        return Result.rejected("toggle_like needs a user or a session")
    done = seen(state, liker, client_id)
    if done is not None:
        return done
    if liker in state.liked_by:
        del state.liked_by[liker]
        liked = False
        if state.liked_added.pop(liker, False) is False:
            state.liked_removed[liker] = None
    else:
        state.liked_by[liker] = None
        liked = True
        if state.liked_removed.pop(liker, False) is False:
            state.liked_added[liker] = None
    # Any change counts, even when the numbers end where they were: an
    # unlike and a like from two people leave `likes` equal but not `likedBy`.
    state.counters_dirty = True
    return remember(state, liker, client_id, Result(ok=True, data={"liked": liked, "likes": state.likes}))


def toggle_likes(state: StreamState, likers: tuple[str, ...], result: Result) -> Result:
    """`toggle_like` for each of `likers` (taps without a client id), in
    order; the first refusal, else `result`."""
    liked_by, added, removed = state.liked_by, state.liked_added, state.liked_removed
    for liker in likers:
        if not liker:
            if result.ok:
                result = Result.rejected("toggle_like needs a user or a session")
            continue
        if liker in liked_by:
            del liked_by[liker]
            if added.pop(liker, False) is False:
                removed[liker] = None
        else:
            liked_by[liker] = None
            if removed.pop(liker, False) is False:
                added[liker] = None
        state.counters_dirty = True
    return result
