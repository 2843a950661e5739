"""Client operation ids: a resend is answered with the first result, for the most recent ids only."""

from __future__ import annotations

from core.commands import ToggleLike
from core.commit import apply_batch
from core.limits import CLIENT_IDS_KEPT
from tests.core.helpers import NOW, apply, new_state


def test_the_most_recent_ids_are_remembered_and_the_oldest_forgotten_first() -> None:
    s = new_state()
    taps = [ToggleLike(f"u{i}", "t") for i in range(CLIENT_IDS_KEPT)]
    apply_batch(s, "gw", "fill", taps, NOW)
    apply(s, ToggleLike("u0", "t"))  # a resend: still remembered, not applied again
    assert "u0" in s.liked_by and len(s.client_ops) == CLIENT_IDS_KEPT
    apply(s, ToggleLike("newest", "t"))  # one id more: the oldest (u0's) is forgotten
    apply(s, ToggleLike("newest", "t"), ToggleLike("u1", "t"))  # resends of remembered ids
    assert "newest" in s.liked_by and "u1" in s.liked_by
    apply(s, ToggleLike("u0", "t"))  # forgotten: applied as a new toggle
    assert "u0" not in s.liked_by
