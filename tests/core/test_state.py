"""The stream's state: what a new or restored stream shows, its bounds, and what it tells moderators."""

from __future__ import annotations

from datetime import timedelta

from core.checkpoint import from_checkpoint, to_checkpoint
from core.commands import Chat, DeleteMessage, EndFlashSale, Mute, PinProduct, StartFlashSale
from core.commit import take_events
from core.limits import DELETED_SEQS_KEPT
from core.state import StreamMeta
from runtime.clock import iso
from tests.core.helpers import NOW, apply, new_state, sale


def test_a_stored_stream_lacking_its_optional_fields_restores_them_as_defaults() -> None:
    assert StreamMeta.from_doc({"streamId": "s9"}) == StreamMeta(stream_id="s9", title="")
    assert StreamMeta.from_doc({"streamId": "s9"}).quality == "auto"


def test_a_restored_stream_shows_its_chat_count_history_and_position() -> None:
    s = new_state(history_size=2)
    apply(s, *(Chat("bob", f"m{i}", False, session_id="s1") for i in range(5)))
    take_events(s, 0.0)
    back = from_checkpoint(to_checkpoint(s), list(s.recent_chat), history_size=2)
    shown = back.snapshot()
    assert shown["chatCount"] == 5 and [c["message"] for c in shown["chat"]] == ["m3", "m4"]
    assert back.view.envelope() == {"streamId": "s" * 24, "seq": s.seq, "epoch": s.epoch}
    apply(back, Chat("bob", "m5", False, session_id="s1"))
    assert [c["message"] for c in back.snapshot()["chat"]] == ["m4", "m5"]  # the shown history stays bounded


def test_sales_are_listed_by_end_time_and_end_in_that_order() -> None:
    s = new_state()
    apply(s, PinProduct("p1", "Shoe", 10), PinProduct("p2", "Hat", 5))
    apply(
        s,
        StartFlashSale(sale(saleId="f1", endsAt=iso(NOW + timedelta(seconds=20)))),
        StartFlashSale(sale(saleId="f2", productId="p2", endsAt=iso(NOW + timedelta(seconds=10)))),
    )
    take_events(s, 0.0)
    assert [x["saleId"] for x in s.flash_sale_list()] == ["f2", "f1"]
    back = from_checkpoint(to_checkpoint(s), [])
    assert [x["saleId"] for x in back.stream_data()["flashSales"]] == ["f2", "f1"]
    assert s.next_sale_end() == iso(NOW + timedelta(seconds=10))
    [ended] = take_events(s, 1.0, NOW + timedelta(seconds=15))
    assert ended.body["flashSale"]["saleId"] == "f2" and list(s.flash_sales) == ["f1"]
    apply(s, EndFlashSale("f1", "admin"))
    assert s.next_sale_end() is None


def test_moderators_see_only_the_mutes_still_running() -> None:
    s = new_state()
    apply(s, Mute(until=iso(NOW + timedelta(seconds=5)), target="u-1"))
    apply(s, Mute(until=iso(NOW + timedelta(seconds=9)), target="u-2"))
    assert [m["userKey"] for m in s.moderation()["muted"]] == ["u-1", "u-2"]
    assert s.moderation(NOW + timedelta(seconds=5))["muted"] == [
        {"userKey": "u-2", "until": iso(NOW + timedelta(seconds=9))}  # u-1's ends exactly then
    ]


def test_the_deletions_remembered_are_bounded_before_and_after_a_restart() -> None:
    s = new_state()
    count = DELETED_SEQS_KEPT + 6
    apply(s, *(Chat("bob", f"m{i}", False, session_id="s1") for i in range(count)))
    apply(s, *(DeleteMessage(seq) for seq in range(1, count + 1)))
    assert list(s.deleted_seqs) == list(range(7, count + 1))
    back = from_checkpoint(to_checkpoint(s), [])
    [posted] = apply(back, Chat("bob", "one more", False, session_id="s1"))
    apply(back, DeleteMessage(posted.seq or 0))
    assert len(back.deleted_seqs) == DELETED_SEQS_KEPT and back.deleted_seqs[-1] == posted.seq
