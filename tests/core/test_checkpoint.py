"""The checkpoint codec, derived from the state's declaration: every stored
field survives, documents written by older versions load, and a restored
stream answers replayed batches instead of applying them again."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from core.checkpoint import from_checkpoint, stored_fields, to_checkpoint
from core.commands import Chat, Join, PinProduct, ToggleLike
from core.commit import CommitInput, apply_batch, apply_commit, take_events
from core.events import ChatRecord
from core.money import DEFAULT_CURRENCY
from core.state import StreamState
from core.stored import STORED
from core.wire import stream_document
from tests.core.helpers import NOW, apply, new_state
from tests.core.strategies import commits

OLD_FORMAT = Path(__file__).parent / "data" / "checkpoint_99c4b02.json"


def through_json(doc: dict[str, Any]) -> dict[str, Any]:
    """What comes back from the database: plain data, no shared objects."""
    back: dict[str, Any] = orjson.loads(orjson.dumps(doc))
    return back


def test_round_trip_restores_everything() -> None:
    s = new_state()
    apply(
        s,
        Join("a"),
        Join("b"),
        ToggleLike("a"),
        Chat("bob", "hi", False, session_id="a"),
        PinProduct("p1", "Shoe", 10),
        batch="gw1:1",
    )
    take_events(s, clock=0.0)
    doc = to_checkpoint(s)
    chat = [ChatRecord.from_doc(c.to_doc()) for c in s.recent_chat]
    back = from_checkpoint(doc, chat)
    assert back.snapshot() == s.snapshot()
    assert back.stats() == s.stats()
    # A batch replayed after the restart is answered, not applied again.
    replay = apply_batch(back, "gw1", "gw1:1", [ToggleLike("a")], NOW)
    assert [r.ok for r in replay] == [True] * 5
    assert back.likes == 1
    # And numbering goes on where it was.
    [r] = apply(back, Chat("bob", "again", False))
    assert r.seq == s.seq + 1


def test_likes_and_unlikes_not_yet_sent_survive_a_round_trip() -> None:
    """A checkpoint taken between a run of taps and the next `stream_update` keeps who
    liked and unliked since the last update, as ordered sets, alone or in a run."""
    s = new_state()
    apply(s, ToggleLike("a", more=("b",)))
    take_events(s, clock=0.0)  # a and b like, and the update that says so is sent
    apply(s, ToggleLike("a", more=("b", "c")))  # a unlikes alone, b unlikes and c likes in the run
    back = from_checkpoint(through_json(to_checkpoint(s)), list(s.recent_chat))
    assert (back.liked_by, back.liked_added, back.liked_removed) == ({"c": None}, {"c": None}, {"a": None, "b": None})
    assert (s.liked_by, s.liked_added, s.liked_removed) == (back.liked_by, back.liked_added, back.liked_removed)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commits())
def test_every_stored_field_survives_a_round_trip(run: list[CommitInput]) -> None:
    state = new_state()
    for commit in run:  # the last commit may leave counters, likes and sale changes pending
        apply_commit(state, commit)
    doc = to_checkpoint(state)
    back = from_checkpoint(through_json(doc), list(state.recent_chat))
    for name, _ in stored_fields():
        assert getattr(back, name) == getattr(state, name), name
    assert to_checkpoint(back) == through_json(doc)
    assert back.recent_chat == state.recent_chat
    assert back.stats() == state.stats()
    assert back.moderation() == state.moderation()


def test_every_field_is_stored_or_said_not_to_be() -> None:
    """A new field of the state must say how it is stored (or be listed here as
    configuration, chat stored on its own, handed out or derived)."""
    unstored = {f.name for f in dataclasses.fields(StreamState) if STORED not in f.metadata}
    assert unstored == {
        "history_size",
        "update_interval",
        "batch_memory",
        "recent_chat",
        "events",
        "new_chat",
        "new_deletions",
        "new_viewers",
        "blocked_re",
        "view",
    }


def test_a_document_written_by_the_previous_codec_loads_unchanged() -> None:
    """`checkpoint_99c4b02.json`: a document, its recent chat, snapshot and
    stats as written by the field-by-field codec this one replaced (with
    pending counters, likes and a sale update, moderation and client ids)."""
    old = json.loads(OLD_FORMAT.read_text())
    back = from_checkpoint(old["checkpoint"], [ChatRecord.from_doc(d) for d in old["recentChat"]])
    # Unchanged but for the pins' currency, which that version did not store: the shop default is read in.
    assert [p.get("currency") for p in old["checkpoint"]["pinned"]] == [None]
    with_currency = [{**p, "currency": DEFAULT_CURRENCY} for p in old["checkpoint"]["pinned"]]
    assert through_json(to_checkpoint(back)) == {**old["checkpoint"], "pinned": with_currency}
    # What the stream shows is the old snapshot in the shapes of issue 15 (`_id`, pinned prices as numbers,
    # with their currency).
    data = old["snapshot"]["streamData"]
    pinned = [{**p, "currency": DEFAULT_CURRENCY} for p in data["pinnedProducts"]]
    shown = {**old["snapshot"], "streamData": stream_document({**data, "pinnedProducts": pinned})}
    assert through_json(back.snapshot()) == shown
    stats = {
        **old["stats"],
        "pinnedProducts": [{**p, "currency": DEFAULT_CURRENCY} for p in old["stats"]["pinnedProducts"]],
    }
    assert through_json(back.stats()) == stats
    assert (back.counters_dirty, list(back.liked_added), list(back.liked_removed)) == (True, ["u4"], ["u1"])
    [update, sale] = take_events(back, clock=101.0)  # the pending updates go out as they would have
    assert (update.type, update.body["likedByAdded"], update.body["likedByRemoved"]) == (
        "stream_update",
        ["u4"],
        ["u1"],
    )
    assert (sale.type, sale.body["flashSale"]["remaining"]) == ("flash_sale_updated", 8)


def test_a_document_from_before_later_fields_loads_with_their_defaults() -> None:
    doc = {
        "meta": {"streamId": "s1", "title": "t"},
        "epoch": "e1",
        "seq": 7,
        "likedBy": ["a"],
        "appliedBatches": [["b1", [[True, None, 3]]]],
    }  # results without data, no moderation
    back = from_checkpoint(doc, [])
    assert (back.seq, back.epoch, back.likes, back.slow_mode, back.muted) == (7, "e1", 1, 0, {})
    assert back.applied_batches["b1"][0].seq == 3 and back.applied_batches["b1"][0].data is None


@pytest.mark.parametrize("key", ["meta", "epoch", "seq"])
def test_a_document_without_a_required_key_is_refused(key: str) -> None:
    doc = to_checkpoint(new_state())
    del doc[key]
    with pytest.raises(KeyError):
        from_checkpoint(doc, [])
