"""Flash sales: on pinned products only, coalesced updates, ends (sold out, time, admin, stream)."""

from __future__ import annotations

import copy

from core.checkpoint import from_checkpoint, to_checkpoint
from core.commands import (
    EndFlashSale,
    FlashSaleChanged,
    PinProduct,
    StartFlashSale,
    ToggleLike,
)
from core.commit import stop_stream, take_events
from core.state import StreamState
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
