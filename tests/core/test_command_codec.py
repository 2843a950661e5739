"""Journal entries replay exactly: the same inputs on the same checkpoint give
the same events, byte for byte, and the same state."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from core.command_codec import command_from_doc, command_to_doc, commit_from_entry, commit_to_entry
from core.stream_state import (
    Chat, CommitInput, EndFlashSale, FlashSaleChanged, GatewayGone, Join, Leave, PinProduct, StartFlashSale,
    StreamMeta, StreamState, SyncViewers, ToggleLike, UnpinProduct, apply_commit,
)
from core.wire import encode_event

T0 = datetime(2026, 11, 25, 12, 0, 0, 987654, tzinfo=timezone.utc)
SALE = {"saleId": "f1", "productId": "p1", "price": "5.00", "quantity": 3, "remaining": 3,
        "perCustomerLimit": 1, "endsAt": "2026-11-25T12:00:02.000Z", "version": 1}

ALL_COMMANDS = [
    Join("a"), Leave("a"), SyncViewers(("a", "b")), GatewayGone(), Chat("u", "m", True, "s", "uid"),
    ToggleLike("x"), ToggleLike("x", None, ("y", "x", "z")), PinProduct("p1", "Shoe", "9.99", "img", 2), UnpinProduct("p1"),
    StartFlashSale(dict(SALE)), FlashSaleChanged({**SALE, "remaining": 2, "version": 2}), EndFlashSale("f1", "admin"),
]


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_round_trips(command: object) -> None:
    assert command_from_doc(command_to_doc(command)) == command  # type: ignore[arg-type]


def test_a_journal_entry_written_before_like_runs_still_decodes() -> None:
    assert command_from_doc({"kind": "ToggleLike", "liker": "x", "client_msg_id": None}) == ToggleLike("x")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        command_from_doc({"kind": "DropDatabase"})


def run(state: StreamState, commits: list[CommitInput]) -> list[dict]:
    entries = []
    for commit in commits:
        _, events = apply_commit(state, commit)
        encoded = [(e.seq, encode_event("s1", state.epoch, e)) for e in events]
        entries.append(commit_to_entry(commit, state.epoch, encoded))
    return entries


def test_replaying_the_journal_on_the_checkpoint_gives_the_same_events_and_state() -> None:
    state = StreamState(meta=StreamMeta(stream_id="s1", title="t"), update_interval=0.25)
    checkpoint = copy.deepcopy(state.to_checkpoint())
    commits = []
    for i in range(40):
        now = T0 + timedelta(milliseconds=70 * i)
        batch = [Join(f"v{i % 7}"), ToggleLike(f"u{i % 5}"), Chat("bob", f"m{i}", False)]
        if i == 3:
            batch.append(PinProduct("p1", "Shoe", "9.99"))
        if i == 4:
            batch.append(StartFlashSale(dict(SALE)))
        if i == 6:
            batch.append(FlashSaleChanged({**SALE, "remaining": 1, "version": 3}))
        commits.append(CommitInput(batches=[("gw1", f"b{i}", batch)], now=now, clock=now.timestamp(),
                                   expired_gateways=["gw9"] if i == 10 else []))
    entries = run(state, commits)
    assert any(e["events"] and '"flash_sale_ended"' in e["events"][-1][1] for e in entries)  # ended on time

    replayed = StreamState.from_checkpoint(checkpoint, [], update_interval=0.25)
    for entry in entries:
        _, events = apply_commit(replayed, commit_from_entry(entry))
        assert [[e.seq, encode_event("s1", replayed.epoch, e)] for e in events] == entry["events"]
    assert replayed.snapshot() == state.snapshot()
    assert replayed.to_checkpoint() == state.to_checkpoint()


def test_replay_from_a_later_checkpoint_matches_too() -> None:
    state = StreamState(meta=StreamMeta(stream_id="s1", title="t"), update_interval=0.25)
    commits = [CommitInput(batches=[("gw", f"b{i}", [ToggleLike(f"u{i}")])], now=T0 + timedelta(milliseconds=40 * i),
                           clock=(T0 + timedelta(milliseconds=40 * i)).timestamp()) for i in range(20)]
    entries = run(state, commits[:10])
    middle = copy.deepcopy(state.to_checkpoint())  # taken between two commits, with an update pending
    later = run(state, commits[10:])
    replayed = StreamState.from_checkpoint(middle, [], update_interval=0.25)
    for entry in later:
        _, events = apply_commit(replayed, commit_from_entry(entry))
        assert [[e.seq, encode_event("s1", replayed.epoch, e)] for e in events] == entry["events"]
    assert replayed.to_checkpoint() == state.to_checkpoint()
    assert entries
