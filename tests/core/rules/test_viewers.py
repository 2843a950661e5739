"""Viewers: distinct by session across gateways; gateways leaving."""

from __future__ import annotations

from core.commands import GatewayGone, Join, Leave, SyncViewers
from core.commit import take_events
from core.rules.viewers import drop_gateway
from tests.core.helpers import apply, new_state


class TestViewers:
    def test_distinct_by_session_across_gateways(self) -> None:
        s = new_state()
        apply(s, Join("a"), Join("b"), gateway="gw1")
        apply(s, Join("a"), gateway="gw2")  # the same session through a second gateway
        assert s.viewer_count == 2
        apply(s, Leave("a"), gateway="gw1")
        assert s.viewer_count == 2  # still watching through gw2
        apply(s, Leave("a"), gateway="gw2")
        assert s.viewer_count == 1

    def test_leave_twice_is_harmless(self) -> None:
        s = new_state()
        apply(s, Join("a"), Leave("a"), Leave("a"))
        assert s.viewer_count == 0

    def test_peak_and_total_joins(self) -> None:
        s = new_state()
        apply(s, Join("a"), Join("b"), Leave("a"), Join("a"))
        assert s.peak_viewers == 2
        assert s.total_joins == 3

    def test_sync_viewers_replaces_one_gateways_set(self) -> None:
        s = new_state()
        apply(s, Join("a"), Join("b"), gateway="gw1")
        apply(s, Join("c"), gateway="gw2")
        apply(s, SyncViewers(("b", "d")), gateway="gw1")
        assert sorted(s.viewers) == ["b", "c", "d"]

    def test_gateway_gone_removes_only_its_viewers(self) -> None:
        s = new_state()
        apply(s, Join("a"), Join("b"), gateway="gw1")
        apply(s, Join("b"), Join("c"), gateway="gw2")
        apply(s, GatewayGone(), gateway="gw1")
        assert sorted(s.viewers) == ["b", "c"] and s.gateways() == {"gw2"}

    def test_drop_gateway(self) -> None:
        s = new_state()
        apply(s, Join("a"), Join("b"), gateway="gw1")
        apply(s, Join("b"), gateway="gw2")
        assert drop_gateway(s, "gw1") == 1
        assert sorted(s.viewers) == ["b"]


def test_new_viewers_are_handed_out_once() -> None:
    s = new_state()
    apply(s, Join("a"), Join("b"), Join("a"), gateway="gw1")
    apply(s, Leave("a"), Join("a"))
    assert s.take_new_viewers() == ["a", "b", "a"]
    assert s.take_new_viewers() == []


def test_a_sync_that_changes_nothing_sends_no_update() -> None:
    s = new_state()
    apply(s, Join("a"), gateway="gw1")
    apply(s, Join("b"), gateway="gw2")
    take_events(s, 0.0)
    apply(s, SyncViewers(("a",)), gateway="gw1")
    assert s.viewers == {"a": {"gw1"}, "b": {"gw2"}} and not s.counters_dirty
    assert take_events(s, 1.0) == []
