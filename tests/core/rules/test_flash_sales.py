"""Flash sales: on pinned products only, coalesced updates, ends (sold out, time, admin, stream)."""

from __future__ import annotations

import copy
from datetime import timedelta

from core.checkpoint import from_checkpoint, to_checkpoint
from core.commands import (
    EndFlashSale,
    FlashSaleChanged,
    PinProduct,
    StartFlashSale,
    ToggleLike,
)
from core.commit import stop_stream, take_events
from core.results import Result
from core.state import StreamState
from runtime.clock import iso
from tests.core.helpers import NOW, apply, new_state, sale


class TestFlashSales:
    def pinned_state(self) -> StreamState:
        s = new_state(update_interval=0.25)
        apply(s, PinProduct("p1", "Shoe", 10))
        take_events(s, 0.0)
        return s

    def test_needs_a_pinned_product(self) -> None:
        s = new_state()
        [r] = apply(s, StartFlashSale(sale()))
        assert not r.ok and "not pinned" in (r.error or "")

    def test_start_updates_coalesced_and_sold_out(self) -> None:
        s = self.pinned_state()
        apply(s, StartFlashSale(sale()))
        [started] = take_events(s, 1.0)
        assert started.type == "flash_sale_started" and started.body["flashSale"]["remaining"] == 10
        apply(
            s,
            FlashSaleChanged(sale(remaining=9, version=2)),
            FlashSaleChanged(sale(remaining=7, version=4)),
            FlashSaleChanged(sale(remaining=8, version=3)),
        )  # a late, older report is ignored
        assert s.stream_data()["flashSales"][0]["remaining"] == 10  # shown once its update is emitted
        [update] = take_events(s, 2.0)
        assert update.type == "flash_sale_updated" and update.body["flashSale"]["remaining"] == 7
        assert s.stream_data()["flashSales"][0]["remaining"] == 7
        apply(s, FlashSaleChanged(sale(remaining=0, version=5)))
        [ended] = take_events(s, 3.0)
        assert ended.type == "flash_sale_ended" and ended.body["reason"] == "sold_out"
        assert s.flash_sales == {}

    def test_ends_on_time(self) -> None:
        s = self.pinned_state()
        apply(s, StartFlashSale(sale(endsAt="2026-11-25T12:00:00.500Z")))
        take_events(s, 1.0, NOW)  # NOW is 12:00:00.123
        assert s.next_sale_end() == "2026-11-25T12:00:00.500Z"
        later = NOW.replace(microsecond=600_000)
        [ended] = take_events(s, 2.0, later)
        assert ended.type == "flash_sale_ended" and ended.body["reason"] == "time"

    def test_a_checkpoint_document_does_not_change_with_later_commands(self) -> None:
        # The actor stores a checkpoint while the next commits are applied.
        s = self.pinned_state()
        apply(s, StartFlashSale(sale()))
        doc = to_checkpoint(s)
        frozen = copy.deepcopy(doc)
        apply(s, FlashSaleChanged(sale(remaining=3, version=2)), PinProduct("p1", "Shoe v2", 12), ToggleLike("x"))
        assert doc == frozen

    def test_survives_checkpoint_and_ends_with_the_stream(self) -> None:
        s = self.pinned_state()
        apply(s, StartFlashSale(sale()))
        back = from_checkpoint(to_checkpoint(s), [])
        assert back.flash_sale_list() == s.flash_sale_list()
        stop_stream(back)
        assert [e.type for e in take_events(back, 5.0)] == ["flash_sale_ended", "stream_stopped"]
        assert back.flash_sales == {}


def test_admin_ends_a_sale_once() -> None:
    s = new_state()
    apply(s, PinProduct("p1", "Shoe", 10), StartFlashSale(sale()))
    take_events(s, 0.0)
    first, again = apply(s, EndFlashSale("f1", "admin"), EndFlashSale("f1", "admin"))
    assert first.seq is not None and again.ok and again.seq is None
    assert [e.body.get("reason") for e in take_events(s, 1.0)] == ["admin"]


class TestFlashSaleAnswers:
    """The exact answers and events of starting, changing and ending a sale, at the edges."""

    def started(self, **kw: object) -> StreamState:
        s = new_state(update_interval=0.25)
        apply(s, PinProduct("p1", "Shoe", 10), PinProduct("p2", "Hat", 5), StartFlashSale(sale(**kw)))
        take_events(s, 0.0)
        return s

    def test_a_sale_lacking_fields_is_refused_naming_them(self) -> None:
        s = new_state()
        apply(s, PinProduct("p1", "Shoe", 10))
        partial = {k: v for k, v in sale().items() if k not in ("price", "endsAt")}
        [r] = apply(s, StartFlashSale(partial))
        assert r == Result(ok=False, error="flash sale lacks endsAt, price")
        [r] = apply(s, StartFlashSale({}))
        assert r == Result(ok=False, error="flash sale lacks endsAt, price, productId, quantity, remaining, saleId")
        assert s.flash_sales == {}

    def test_start_answers_its_event_and_a_second_start_is_a_plain_ok(self) -> None:
        s = new_state()
        apply(s, PinProduct("p1", "Shoe", 10))
        take_events(s, 0.0)
        first, again = apply(s, StartFlashSale(sale()), StartFlashSale(sale(remaining=3)))
        [event] = take_events(s, 0.0)
        assert first == Result(ok=True, seq=event.seq) and again == Result(ok=True)
        assert (event.type, event.body) == ("flash_sale_started", {"flashSale": sale()})
        assert s.flash_sales["f1"]["remaining"] == 10

    def test_a_change_for_no_running_sale_is_refused(self) -> None:
        s = self.started()
        [r] = apply(s, FlashSaleChanged(sale(saleId="f9", version=2)))
        assert r == Result(ok=False, error="no such flash sale running")

    def test_only_a_newer_version_is_applied(self) -> None:
        s = self.started(version=3)
        same, older = apply(s, FlashSaleChanged(sale(remaining=2, version=3)), FlashSaleChanged(sale(remaining=1)))
        assert same.ok and older.ok and s.flash_sales["f1"]["remaining"] == 10 and s.sales_dirty == set()
        assert take_events(s, 1.0) == []

    def test_without_versions_a_change_is_not_newer_until_it_has_one(self) -> None:
        unversioned = {k: v for k, v in sale().items() if k != "version"}
        s = new_state()
        apply(s, PinProduct("p1", "Shoe", 10), StartFlashSale(unversioned))  # announced without a version
        apply(s, FlashSaleChanged({**unversioned, "remaining": 4}))
        assert s.flash_sales["f1"]["remaining"] == 10  # no version: not newer than none
        apply(s, FlashSaleChanged({**unversioned, "remaining": 4, "version": 1}))
        assert s.flash_sales["f1"]["remaining"] == 4

    def test_the_last_unit_keeps_the_sale_running_and_none_ends_it(self) -> None:
        s = self.started()
        apply(s, FlashSaleChanged(sale(remaining=1, version=2)))
        [update] = take_events(s, 1.0)
        assert (update.type, update.body) == ("flash_sale_updated", {"flashSale": sale(remaining=1, version=2)})
        apply(s, FlashSaleChanged(sale(remaining=0, version=3)))
        [ended] = take_events(s, 2.0)
        assert (ended.type, ended.body) == (
            "flash_sale_ended",
            {"flashSale": {**sale(remaining=0, version=3), "status": "ended"}, "reason": "sold_out"},
        )

    def test_updates_are_one_per_changed_sale_in_id_order(self) -> None:
        s = new_state(update_interval=0.25)
        apply(s, PinProduct("p1", "Shoe", 10), PinProduct("p2", "Hat", 5))
        apply(s, StartFlashSale(sale(saleId="f2", productId="p2")), StartFlashSale(sale()))
        take_events(s, 0.0)
        apply(s, FlashSaleChanged(sale(saleId="f2", productId="p2", remaining=5, version=2)))
        apply(s, FlashSaleChanged(sale(remaining=6, version=2)), FlashSaleChanged(sale(remaining=4, version=3)))
        events = take_events(s, 1.0)
        assert [(e.type, e.body["flashSale"]["saleId"], e.body["flashSale"]["remaining"]) for e in events] == [
            ("flash_sale_updated", "f1", 4),
            ("flash_sale_updated", "f2", 5),
        ]
        assert s.sales_dirty == set() and take_events(s, 2.0) == []

    def test_an_admin_end_answers_its_event_and_drops_a_pending_update(self) -> None:
        s = self.started()
        changed, ended = apply(s, FlashSaleChanged(sale(remaining=6, version=2)), EndFlashSale("f1", "admin"))
        [event] = take_events(s, 1.0)
        assert changed == Result(ok=True) and ended == Result(ok=True, seq=event.seq)
        assert (event.type, event.body) == (
            "flash_sale_ended",
            {"flashSale": {**sale(remaining=6, version=2), "status": "ended"}, "reason": "admin"},
        )
        assert s.sales_dirty == set()

    def test_a_sale_ends_at_its_end_time_exactly(self) -> None:
        s = self.started(endsAt=iso(NOW))
        assert take_events(s, 1.0, NOW - timedelta(milliseconds=1)) == []
        [ended] = take_events(s, 1.0, NOW)
        assert ended.body["reason"] == "time" and s.flash_sales == {}

    def test_the_end_of_the_stream_ends_every_sale_saying_so(self) -> None:
        s = new_state()
        apply(s, PinProduct("p1", "Shoe", 10), PinProduct("p2", "Hat", 5))
        apply(s, StartFlashSale(sale()), StartFlashSale(sale(saleId="f2", productId="p2")))
        take_events(s, 0.0)
        stop_stream(s)
        events = take_events(s, 1.0)
        assert [(e.type, e.body.get("reason")) for e in events] == [
            ("flash_sale_ended", "stream_stopped"),
            ("flash_sale_ended", "stream_stopped"),
            ("stream_stopped", None),
        ]
