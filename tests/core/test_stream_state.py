"""The stream's rules, with no Ray, no sockets, no database."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from core.stream_state import (
    MAX_MESSAGE_CHARS,
    Chat,
    ChatRecord,
    EndFlashSale,
    FlashSaleChanged,
    GatewayGone,
    Join,
    Leave,
    PinProduct,
    StreamMeta,
    StreamState,
    StartFlashSale,
    SyncViewers,
    ToggleLike,
    UnpinProduct,
)

NOW = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=timezone.utc)


def new_state(**kw: object) -> StreamState:
    return StreamState(meta=StreamMeta(stream_id="s" * 24, title="Sale"), **kw)  # type: ignore[arg-type]


def apply(state: StreamState, *commands: object, gateway: str = "gw1", batch: str | None = None) -> list:
    apply.n = getattr(apply, "n", 0) + 1  # type: ignore[attr-defined]
    return state.apply_batch(gateway, batch or f"b{apply.n}", commands, NOW)  # type: ignore[arg-type,attr-defined]


def types(events: list) -> list[str]:
    return [e.type for e in events]


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
        assert s.drop_gateway("gw1") == 1
        assert sorted(s.viewers) == ["b"]


class TestLikes:
    def test_toggle_once_per_liker(self) -> None:
        s = new_state()
        r = apply(s, ToggleLike("u1"), ToggleLike("u2"), ToggleLike("u1"))
        assert [x.data["liked"] for x in r] == [True, True, False]
        assert s.likes == 1
        assert list(s.liked_by) == ["u2"]

    def test_empty_liker_rejected(self) -> None:
        s = new_state()
        [r] = apply(s, ToggleLike(""))
        assert not r.ok and s.likes == 0


class TestCoalescing:
    def test_many_changes_one_update_per_interval(self) -> None:
        s = new_state(update_interval=0.25)
        apply(s, *[ToggleLike(f"u{i}") for i in range(100)], Join("a"))
        events = s.take_events(clock=10.0)
        assert types(events) == ["stream_update"]
        assert events[0].body["likes"] == 100 and events[0].body["viewerCount"] == 1
        apply(s, ToggleLike("x"))
        assert s.take_events(clock=10.1) == []  # not due yet
        assert s.update_due_in(10.1) == pytest.approx(0.15)
        [update] = s.take_events(clock=10.25)
        assert update.body["likes"] == 101

    def test_no_update_without_change(self) -> None:
        s = new_state()
        assert s.update_due_in(0.0) is None
        assert s.take_events(clock=5.0) == []

    def test_like_then_unlike_by_two_people_still_updates_liked_by(self) -> None:
        s = new_state()
        apply(s, ToggleLike("a"))
        [first] = s.take_events(clock=1.0)
        assert (first.body["likedByAdded"], first.body["likedByRemoved"]) == (["a"], [])
        apply(s, ToggleLike("a"), ToggleLike("b"))
        [update] = s.take_events(clock=2.0)
        assert update.body["likes"] == 1
        assert (update.body["likedByAdded"], update.body["likedByRemoved"]) == (["b"], ["a"])
        assert "likedBy" not in update.body  # never the whole list: it can be thousands long

    def test_changes_that_cancel_out_within_a_tick_are_not_reported(self) -> None:
        s = new_state()
        apply(s, ToggleLike("a"), ToggleLike("a"), ToggleLike("b"))
        [update] = s.take_events(clock=1.0)
        assert (update.body["likedByAdded"], update.body["likedByRemoved"]) == (["b"], [])
        apply(s, ToggleLike("b"), ToggleLike("b"))
        [again] = s.take_events(clock=2.0)
        assert (again.body["likes"], again.body["likedByAdded"], again.body["likedByRemoved"]) == (1, [], [])


class TestLikeRuns:
    """`ToggleLike(..., more=...)`: a gateway's run of taps in one command, applied
    exactly as the same taps one by one."""

    TAPS = ["a", "b", "a", "c", "c", "c", "d", "a", "b", "e"]

    def _one_by_one(self, state: StreamState, taps: list[str]) -> None:
        apply(state, *[ToggleLike(t) for t in taps])

    def _as_run(self, state: StreamState, taps: list[str]) -> list:
        return apply(state, ToggleLike(taps[0], None, tuple(taps[1:])))

    @pytest.mark.parametrize("cut", [1, 3, 10])
    def test_a_run_ends_where_the_same_taps_one_by_one_end(self, cut: int) -> None:
        single, run = new_state(), new_state()
        apply(single, ToggleLike("a"), ToggleLike("z"))
        apply(run, ToggleLike("a"), ToggleLike("z"))
        single.take_events(clock=1.0), run.take_events(clock=1.0)
        self._one_by_one(single, self.TAPS[:cut])
        self._one_by_one(single, self.TAPS[cut:])
        [r1] = self._as_run(run, self.TAPS[:cut])
        if self.TAPS[cut:]:
            self._as_run(run, self.TAPS[cut:])
        assert r1.ok
        assert list(run.liked_by) == list(single.liked_by) and run.likes == single.likes
        assert [e.body for e in run.take_events(clock=2.0)] == [e.body for e in single.take_events(clock=2.0)]
        ignore = ("epoch", "appliedBatches")
        assert ({k: v for k, v in run.to_checkpoint().items() if k not in ignore}
                == {k: v for k, v in single.to_checkpoint().items() if k not in ignore})

    def test_the_answer_is_the_first_taps_unless_one_is_refused(self) -> None:
        s = new_state()
        [r] = self._as_run(s, ["a", "b"])
        assert r.ok and r.data == {"liked": True, "likes": 1}
        [refused] = apply(s, ToggleLike("c", None, ("", "d")))
        assert not refused.ok and s.likes == 4  # the others still count, as they would one by one

    def test_a_run_is_applied_once_per_batch(self) -> None:
        s = new_state()
        apply(s, ToggleLike("a", None, ("b",)), batch="gw1:1")
        apply(s, ToggleLike("a", None, ("b",)), batch="gw1:1")
        assert s.likes == 2


class TestChat:
    def test_message_numbered_stored_and_recent(self) -> None:
        s = new_state(history_size=2)
        r = apply(
            s,
            Chat("bob", "  hi  ", is_admin=False, session_id="s1"),
            Chat("", "second", is_admin=True),
            Chat("eve", "third", is_admin=False),
        )
        assert [x.seq for x in r] == [1, 2, 3]
        events = s.take_events(clock=0.0)
        assert types(events) == ["chat_message"] * 3
        assert events[0].body["message"] == "hi"
        assert events[0].body["timestamp"] == "2026-11-25T12:00:00.123Z"
        assert events[1].body["username"] == "Guest" and events[1].body["isAdmin"] is True
        assert [c.message for c in s.recent_chat] == ["second", "third"]  # bounded history
        assert [c.seq for c in s.take_new_chat()] == [1, 2, 3]
        assert s.take_new_chat() == []
        assert s.chat_count == 3

    @pytest.mark.parametrize("message", ["", "   ", "x" * (MAX_MESSAGE_CHARS + 1)])
    def test_bad_messages_rejected_without_side_effects(self, message: str) -> None:
        s = new_state()
        [r] = apply(s, Chat("bob", message, is_admin=False))
        assert not r.ok and r.error
        assert s.seq == 0 and s.take_events(0.0) == [] and s.chat_count == 0

    def test_username_too_long(self) -> None:
        [r] = apply(new_state(), Chat("x" * 51, "hi", is_admin=False))
        assert not r.ok and "username" in (r.error or "")


class TestPinnedProducts:
    def test_pin_orders_and_unpin(self) -> None:
        s = new_state()
        apply(s, PinProduct("p1", "Shoe", 10), PinProduct("p2", "Hat", "5.50"), PinProduct("p3", "Bag", 3, display_order=0))
        events = s.take_events(0.0)
        assert types(events) == ["pinned_products_updated"] * 3
        assert [p["productId"] for p in events[-1].body["pinnedProducts"]] == ["p3", "p1", "p2"]
        [r] = apply(s, UnpinProduct("p1"))
        assert r.ok
        assert [p["productId"] for p in s.pinned_list()] == ["p3", "p2"]
        [r] = apply(s, UnpinProduct("nope"))
        assert not r.ok

    def test_repin_keeps_order(self) -> None:
        s = new_state()
        apply(s, PinProduct("p1", "Shoe", 10), PinProduct("p2", "Hat", 5), PinProduct("p1", "Shoe v2", 12))
        assert [(p["productId"], p["displayOrder"], p["name"]) for p in s.pinned_list()] == [
            ("p1", 1, "Shoe v2"), ("p2", 2, "Hat")]


class TestOrderAndIdempotence:
    def test_sequence_is_gapless_and_ordered(self) -> None:
        s = new_state()
        apply(s, Chat("a", "1", False), ToggleLike("x"), PinProduct("p", "P", 1), Chat("a", "2", False))
        events = s.take_events(clock=0.0)
        assert [e.seq for e in events] == [1, 2, 3, 4]
        assert types(events) == ["chat_message", "pinned_products_updated", "chat_message", "stream_update"]

    def test_batch_applied_at_most_once(self) -> None:
        s = new_state()
        first = apply(s, Chat("a", "hello", False), ToggleLike("x"), batch="gw1:7")
        again = apply(s, Chat("a", "hello", False), ToggleLike("x"), batch="gw1:7")
        assert again == first
        assert s.chat_count == 1 and s.likes == 1

    def test_batch_memory_is_bounded(self) -> None:
        s = new_state(batch_memory=3)
        for i in range(10):
            apply(s, ToggleLike(f"u{i}"), batch=f"b{i}")
        assert list(s.applied_batches) == ["b7", "b8", "b9"]


class TestCheckpoint:
    def test_round_trip_restores_everything(self) -> None:
        s = new_state()
        apply(s, Join("a"), Join("b"), ToggleLike("a"), Chat("bob", "hi", False, session_id="a"),
              PinProduct("p1", "Shoe", 10), batch="gw1:1")
        s.take_events(clock=0.0)
        doc = s.to_checkpoint()
        chat = [ChatRecord.from_doc(c.to_doc()) for c in s.recent_chat]
        back = StreamState.from_checkpoint(doc, chat)
        assert back.snapshot() == s.snapshot()
        assert back.stats() == s.stats()
        # A batch replayed after the restart is answered, not applied again.
        replay = back.apply_batch("gw1", "gw1:1", [ToggleLike("a")], NOW)
        assert [r.ok for r in replay] == [True] * 5
        assert back.likes == 1
        # And numbering goes on where it was.
        [r] = apply(back, Chat("bob", "again", False))
        assert r.seq == s.seq + 1

    def test_stop_flushes_counters_then_ends(self) -> None:
        s = new_state()
        apply(s, ToggleLike("a"))
        stop = s.stop()
        events = s.take_events(clock=0.0)
        assert types(events) == ["stream_update", "stream_stopped"]
        assert stop.seq == events[-1].seq


def sale(**kw: object) -> dict:
    base = {"saleId": "f1", "productId": "p1", "price": "9.99", "quantity": 10, "remaining": 10,
            "perCustomerLimit": 2, "endsAt": "2026-11-25T12:05:00.000Z", "version": 1}
    return {**base, **kw}


class TestFlashSales:
    def pinned_state(self) -> StreamState:
        s = new_state(update_interval=0.25)
        apply(s, PinProduct("p1", "Shoe", 10))
        s.take_events(0.0)
        return s

    def test_needs_a_pinned_product(self) -> None:
        s = new_state()
        [r] = apply(s, StartFlashSale(sale()))
        assert not r.ok and "not pinned" in (r.error or "")

    def test_start_updates_coalesced_and_sold_out(self) -> None:
        s = self.pinned_state()
        apply(s, StartFlashSale(sale()))
        [started] = s.take_events(1.0)
        assert started.type == "flash_sale_started" and started.body["flashSale"]["remaining"] == 10
        apply(s, FlashSaleChanged(sale(remaining=9, version=2)), FlashSaleChanged(sale(remaining=7, version=4)),
              FlashSaleChanged(sale(remaining=8, version=3)))  # a late, older report is ignored
        [update] = s.take_events(2.0)
        assert update.type == "flash_sale_updated" and update.body["flashSale"]["remaining"] == 7
        assert s.stream_data()["flashSales"][0]["remaining"] == 7
        apply(s, FlashSaleChanged(sale(remaining=0, version=5)))
        [ended] = s.take_events(3.0)
        assert ended.type == "flash_sale_ended" and ended.body["reason"] == "sold_out"
        assert s.flash_sales == {}

    def test_ends_on_time(self) -> None:
        s = self.pinned_state()
        apply(s, StartFlashSale(sale(endsAt="2026-11-25T12:00:00.500Z")))
        s.take_events(1.0, NOW)  # NOW is 12:00:00.123
        assert s.next_sale_end() == "2026-11-25T12:00:00.500Z"
        later = NOW.replace(microsecond=600_000)
        [ended] = s.take_events(2.0, later)
        assert ended.type == "flash_sale_ended" and ended.body["reason"] == "time"

    def test_a_checkpoint_document_does_not_change_with_later_commands(self) -> None:
        # The actor stores a checkpoint while the next commits are applied.
        s = self.pinned_state()
        apply(s, StartFlashSale(sale()))
        doc = s.to_checkpoint()
        frozen = copy.deepcopy(doc)
        apply(s, FlashSaleChanged(sale(remaining=3, version=2)), PinProduct("p1", "Shoe v2", 12), ToggleLike("x"))
        assert doc == frozen

    def test_survives_checkpoint_and_ends_with_the_stream(self) -> None:
        s = self.pinned_state()
        apply(s, StartFlashSale(sale()))
        back = StreamState.from_checkpoint(s.to_checkpoint(), [])
        assert back.flash_sale_list() == s.flash_sale_list()
        back.stop()
        assert [e.type for e in back.take_events(5.0)] == ["flash_sale_ended", "stream_stopped"]
        assert back.flash_sales == {}


def test_new_viewers_are_handed_out_once() -> None:
    s = new_state()
    apply(s, Join("a"), Join("b"), Join("a"), gateway="gw1")
    apply(s, Leave("a"), Join("a"))
    assert s.take_new_viewers() == ["a", "b", "a"]
    assert s.take_new_viewers() == []


def test_admin_ends_a_sale_once() -> None:
    s = new_state()
    apply(s, PinProduct("p1", "Shoe", 10), StartFlashSale(sale()))
    s.take_events(0.0)
    first, again = apply(s, EndFlashSale("f1", "admin"), EndFlashSale("f1", "admin"))
    assert first.seq is not None and again.ok and again.seq is None
    assert [e.body.get("reason") for e in s.take_events(1.0)] == ["admin"]


class TestClientIds:
    def test_a_resent_chat_is_stored_once(self) -> None:
        s = new_state()
        first, again = apply(s, Chat("a", "hello", False, session_id="s1", client_msg_id="c1"),
                             Chat("a", "hello", False, session_id="s1", client_msg_id="c1"))
        assert first.seq == again.seq and s.chat_count == 1
        [other] = apply(s, Chat("b", "hello", False, session_id="s2", client_msg_id="c1"))
        assert other.seq != first.seq  # ids are per sender

    def test_a_resent_toggle_is_applied_once_and_survives_a_checkpoint(self) -> None:
        s = new_state()
        apply(s, ToggleLike("u", "t1"), ToggleLike("u", "t1"))
        assert s.likes == 1
        back = StreamState.from_checkpoint(s.to_checkpoint(), [])
        [r] = apply(back, ToggleLike("u", "t1"))
        assert r.data == {"liked": True, "likes": 1} and back.likes == 1


def test_the_actors_pending_limit_counts_each_tap_of_a_run() -> None:
    from actors.stream_actor import _taps

    assert _taps([ToggleLike("a", None, ("b", "c")), ToggleLike("d"), Join("x")]) == 5
