"""Journal entries replay exactly: the same inputs on the same checkpoint give
the same events, byte for byte, and the same state."""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from core.checkpoint import from_checkpoint, to_checkpoint
from core.command_codec import (
    command_from_doc,
    command_to_doc,
    commit_from_entry,
    commit_to_entry,
)
from core.commands import (
    COMMAND_TYPES,
    Chat,
    Command,
    EndFlashSale,
    FlashSaleChanged,
    GatewayGone,
    Join,
    Leave,
    PinProduct,
    StartFlashSale,
    SyncViewers,
    ToggleLike,
    UnpinProduct,
)
from core.commit import CommitInput, apply_commit
from core.money import DEFAULT_CURRENCY
from core.state import StreamMeta, StreamState
from core.wire import encode_event

T0 = datetime(2026, 11, 25, 12, 0, 0, 987654, tzinfo=UTC)
SALE = {
    "saleId": "f1",
    "productId": "p1",
    "price": "5.00",
    "quantity": 3,
    "remaining": 3,
    "perCustomerLimit": 1,
    "endsAt": "2026-11-25T12:00:02.000Z",
    "version": 1,
}

ALL_COMMANDS = [
    Join("a"),
    Leave("a"),
    SyncViewers(("a", "b")),
    GatewayGone(),
    Chat("u", "m", True, "s", "uid"),
    ToggleLike("x"),
    ToggleLike("x", None, ("y", "x", "z")),
    PinProduct("p1", "Shoe", "9.99", "img", 2),
    PinProduct("p2", "Cup", "500", None, None, "JPY"),
    UnpinProduct("p1"),
    StartFlashSale(dict(SALE)),
    FlashSaleChanged({**SALE, "remaining": 2, "version": 2}),
    EndFlashSale("f1", "admin"),
]


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_round_trips(command: Command) -> None:
    assert command_from_doc(command_to_doc(command)) == command


def values_of(hint: Any) -> st.SearchStrategy[Any]:
    """Any value of a command field's declared type that a journal entry can hold."""
    json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return json_scalars
    if hint is int:
        return st.integers(-(2**53), 2**53)  # what a stored document holds exactly
    if hint in (str, bool):
        return st.from_type(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([values_of(a) for a in args])
    if hint is type(None):
        return st.none()
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(values_of(args[0]), max_size=4).map(tuple)
    if origin is dict and args == (str, Any):
        return st.dictionaries(st.text(max_size=8), json_scalars, max_size=4)
    raise TypeError(f"no values for {hint}: teach this test (and the journal codec) the new field type")


def commands_of(cls: type[Command]) -> st.SearchStrategy[Command]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: values_of(hints[f.name]) for f in dataclasses.fields(cls)})


@pytest.mark.parametrize("kind", COMMAND_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_kind_of_command_round_trips_through_a_stored_document(kind: type[Command], data: st.DataObject) -> None:
    """Derived from the one list of commands: a new kind is tested here as soon as it is declared."""
    command = data.draw(commands_of(kind))
    stored = orjson.loads(orjson.dumps(command_to_doc(command)))  # what the journal gives back
    assert stored["kind"] == kind.__name__
    back = command_from_doc(stored)
    assert type(back) is kind and back == command


def test_the_codec_knows_exactly_the_declared_kinds() -> None:
    assert len({c.__name__ for c in COMMAND_TYPES}) == len(COMMAND_TYPES) == len(typing.get_args(Command))
    for kind in COMMAND_TYPES:
        with pytest.raises(TypeError):  # a field this version does not know is refused, not dropped
            command_from_doc({"kind": kind.__name__, "no_such_field": 1})


def test_a_journal_entry_written_before_like_runs_still_decodes() -> None:
    assert command_from_doc({"kind": "ToggleLike", "liker": "x", "client_msg_id": None}) == ToggleLike("x")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        command_from_doc({"kind": "DropDatabase"})


def run(state: StreamState, commits: list[CommitInput]) -> list[dict[str, Any]]:
    entries = []
    for commit in commits:
        _, events = apply_commit(state, commit)
        encoded = [(e.seq, encode_event("s1", state.epoch, e)) for e in events]
        entries.append(commit_to_entry(commit, state.epoch, encoded))
    return entries


def test_replaying_the_journal_on_the_checkpoint_gives_the_same_events_and_state() -> None:
    state = StreamState(meta=StreamMeta(stream_id="s1", title="t"), update_interval=0.25)
    checkpoint = copy.deepcopy(to_checkpoint(state))
    commits: list[CommitInput] = []
    for i in range(40):
        now = T0 + timedelta(milliseconds=70 * i)
        batch: list[Command] = [Join(f"v{i % 7}"), ToggleLike(f"u{i % 5}"), Chat("bob", f"m{i}", False)]
        if i == 3:
            batch.append(PinProduct("p1", "Shoe", "9.99"))
        if i == 4:
            batch.append(StartFlashSale(dict(SALE)))
        if i == 6:
            batch.append(FlashSaleChanged({**SALE, "remaining": 1, "version": 3}))
        commits.append(
            CommitInput(
                batches=[("gw1", f"b{i}", batch)],
                now=now,
                clock=now.timestamp(),
                expired_gateways=["gw9"] if i == 10 else [],
            )
        )
    entries = run(state, commits)
    assert any(e["events"] and '"flash_sale_ended"' in e["events"][-1][1] for e in entries)  # ended on time

    replayed = from_checkpoint(checkpoint, [], update_interval=0.25)
    for entry in entries:
        _, events = apply_commit(replayed, commit_from_entry(entry))
        assert [[e.seq, encode_event("s1", replayed.epoch, e)] for e in events] == entry["events"]
    assert replayed.snapshot() == state.snapshot()
    assert to_checkpoint(replayed) == to_checkpoint(state)


def test_replay_from_a_later_checkpoint_matches_too() -> None:
    state = StreamState(meta=StreamMeta(stream_id="s1", title="t"), update_interval=0.25)
    commits = [
        CommitInput(
            batches=[("gw", f"b{i}", [ToggleLike(f"u{i}")])],
            now=T0 + timedelta(milliseconds=40 * i),
            clock=(T0 + timedelta(milliseconds=40 * i)).timestamp(),
        )
        for i in range(20)
    ]
    entries = run(state, commits[:10])
    middle = copy.deepcopy(to_checkpoint(state))  # taken between two commits, with an update pending
    later = run(state, commits[10:])
    replayed = from_checkpoint(middle, [], update_interval=0.25)
    for entry in later:
        _, events = apply_commit(replayed, commit_from_entry(entry))
        assert [[e.seq, encode_event("s1", replayed.epoch, e)] for e in events] == entry["events"]
    assert to_checkpoint(replayed) == to_checkpoint(state)
    assert entries


def test_a_pin_journaled_before_pins_carried_a_currency_replays_with_the_shop_default() -> None:
    """A journal entry as the version before #15's pinned currency wrote it (its PinProduct has
    no `currency`): it still decodes and replays, and what viewers are shown of the pin carries
    the shop default currency beside its price."""
    old_entry = {
        "epoch": "e1",
        "at": "2026-11-25T12:00:00.987Z",
        "clock": T0.timestamp(),
        "expired": [],
        "batches": [
            {
                "gateway": "gw1",
                "batchId": "b1",
                "commands": [
                    {
                        "kind": "PinProduct",
                        "product_id": "p1",
                        "name": "Shoe",
                        "price": "9.99",
                        "image": "img",
                        "display_order": None,
                    }
                ],
            }
        ],
        "events": [],
    }
    state = StreamState(meta=StreamMeta(stream_id="s1", title="t"), update_interval=0.25)
    _, events = apply_commit(state, commit_from_entry(old_entry))
    [pinned] = [e for e in events if e.type == "pinned_products_updated"]
    [shown] = orjson.loads(encode_event("s1", state.epoch, pinned))["pinnedProducts"]
    assert (shown["price"], shown["priceMinor"], shown["currency"]) == (9.99, 999, DEFAULT_CURRENCY)
    assert state.snapshot()["streamData"]["pinnedProducts"][0]["currency"] == DEFAULT_CURRENCY
    # And a checkpoint taken now keeps it, so it is read back the same.
    assert from_checkpoint(to_checkpoint(state), []).pinned["p1"]["currency"] == DEFAULT_CURRENCY
