"""Hypothesis strategies: random commands and commits of a stream, over a few
sessions, products and sales so that commands meet (toggle back, re-pin, end a
sale that ended, delete a message that exists)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from core.commands import (
    Chat,
    Command,
    DeleteMessage,
    EndFlashSale,
    FlashSaleChanged,
    GatewayGone,
    Join,
    Leave,
    Mute,
    PinProduct,
    SetBlockedWords,
    SetSlowMode,
    StartFlashSale,
    SyncViewers,
    ToggleLike,
    Unmute,
    UnpinProduct,
)
from core.commit import CommitInput
from runtime.clock import iso

T0 = datetime(2026, 11, 25, 12, 0, 0, 123000, tzinfo=UTC)

keys = st.sampled_from(["a", "b", "c", "d", "u1", "u2"])
maybe_key = st.none() | keys
client_ids = st.none() | st.sampled_from(["c1", "c2"])
products = st.sampled_from(["p1", "p2", "p3"])
sale_ids = st.sampled_from(["f1", "f2"])
prices = st.integers(0, 10_000) | st.sampled_from(["9.99", "0.50"])
words = st.sampled_from(["spam", "scam", "free money"])


@st.composite
def sales(draw: st.DrawFn) -> dict[str, Any]:
    quantity = draw(st.integers(1, 5))
    return {
        "saleId": draw(sale_ids),
        "productId": draw(products),
        "price": draw(prices),
        "quantity": quantity,
        "remaining": draw(st.integers(0, quantity)),
        "perCustomerLimit": 1,
        "endsAt": iso(T0 + timedelta(milliseconds=draw(st.integers(0, 20_000)))),
        "version": draw(st.integers(1, 6)),
    }


commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(Join, keys),
    st.builds(Leave, keys),
    st.builds(SyncViewers, st.lists(keys, max_size=3).map(tuple)),
    st.just(GatewayGone()),
    st.builds(
        Chat,
        st.sampled_from(["ann", "", "bob"]),
        st.sampled_from(["hi", "spam it", " ", "free money now"]),
        st.booleans(),
        maybe_key,
        maybe_key,
        client_ids,
        st.booleans(),
    ),
    st.builds(ToggleLike, keys, client_ids, st.lists(keys | st.just(""), max_size=4).map(tuple)),
    st.builds(
        PinProduct,
        products,
        st.sampled_from(["Shoe", "Hat"]),
        prices,
        st.none() | st.just("img.png"),
        st.none() | st.integers(0, 3),
    ),
    st.builds(UnpinProduct, products),
    st.builds(StartFlashSale, sales()),
    st.builds(FlashSaleChanged, sales()),
    st.builds(EndFlashSale, sale_ids, st.sampled_from(["admin", "ended"])),
    st.builds(DeleteMessage, st.integers(0, 40)),
    st.builds(
        Mute,
        st.integers(-5, 30).map(lambda s: iso(T0 + timedelta(seconds=s))),
        maybe_key,
        st.none() | st.integers(1, 40),
    ),
    st.builds(Unmute, keys),
    st.builds(SetBlockedWords, st.lists(words, max_size=2).map(tuple)),
    st.builds(SetSlowMode, st.integers(0, 3)),
)


@st.composite
def commits(draw: st.DrawFn, max_commits: int = 12) -> list[CommitInput]:
    """A run of commits, each a few batches of a few commands, 0 to 600 ms apart."""
    out: list[CommitInput] = []
    at = T0
    for i in range(draw(st.integers(1, max_commits))):
        at += timedelta(milliseconds=draw(st.integers(0, 600)))
        batches = [
            (draw(st.sampled_from(["gw1", "gw2"])), f"b{i}.{j}", draw(st.lists(commands, max_size=5)))
            for j in range(draw(st.integers(0, 2)))
        ]
        expired = draw(st.lists(st.sampled_from(["gw1", "gw2"]), max_size=1))
        out.append(CommitInput(batches=batches, now=at, clock=at.timestamp(), expired_gateways=expired))
    return out
