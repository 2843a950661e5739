"""Applying commands to a stream: batches, commits, coalesced updates, the end.

The Ray actor in `actors/stream_actor.py` is a thin shell: it gathers the
gateways' batches into a `CommitInput`, calls `apply_commit`, stores the
journal entry, then publishes the events and answers. Every rule lives in
`core.rules`; this module only routes commands to them and decides when
coalesced updates are due.

Guarantees:

* **Idempotent by batch.** A batch of commands is applied at most once:
  applying a batch id that was already applied returns the first results and
  changes nothing. The ids of the most recent batches are part of the checkpoint.
* **Coalesced counters.** Viewer count and likes never produce one event per
  change: they mark the counters dirty, and `take_events` emits at most one
  `stream_update` per `update_interval` seconds. It carries the counts and who
  started and stopped liking since the previous one (`likedByAdded`,
  `likedByRemoved`), never the whole list: with thousands of likers the list
  would cost more than everything else. Gateways keep the set and tell each
  old app whether *it* likes (see `core/stream_view.py`).
* **Deterministic.** Time comes in as arguments (`now` wall clock for what is
  shown, `clock` seconds since the epoch for coalescing), so tests drive it
  exactly and a journal replays it exactly (`apply_commit` on a `CommitInput`
  decoded from the journal by `core.command_codec`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

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
from core.events import Event
from core.results import OK, Result
from core.rules import chat, flash_sales, likes, moderation, pins, viewers
from core.state import StreamState


def apply(state: StreamState, gateway_id: str, command: Command, now: datetime) -> Result:
    """Apply one command sent by `gateway_id` at `now`."""
    match command:
        case Join(session_id):
            return viewers.join(state, gateway_id, session_id)
        case Leave(session_id):
            return viewers.leave(state, gateway_id, session_id)
        case SyncViewers(session_ids):
            return viewers.sync_viewers(state, gateway_id, session_ids)
        case GatewayGone():
            viewers.drop_gateway(state, gateway_id)
            return OK
        case Chat():
            return chat.chat(state, command, now)
        case ToggleLike(liker, client_id, more):
            result = likes.toggle_like(state, liker, client_id)
            return likes.toggle_likes(state, more, result) if more else result
        case PinProduct():
            return pins.pin(state, command)
        case UnpinProduct(product_id):
            return pins.unpin(state, product_id)
        case StartFlashSale(sale):
            return flash_sales.start_sale(state, sale)
        case FlashSaleChanged(sale):
            return flash_sales.sale_changed(state, sale)
        case EndFlashSale(sale_id, reason):
            return flash_sales.end_sale(state, sale_id, reason)
        case DeleteMessage(seq):
            return chat.delete_message(state, seq)
        case Mute():
            return moderation.mute(state, command, now)
        case Unmute(target):
            return moderation.unmute(state, target)
        case SetBlockedWords(words):
            return moderation.set_blocked_words(state, words)
        case SetSlowMode(seconds):
            return moderation.set_slow_mode(state, seconds)
    # A peer on a newer version may send a command this one does not know.
    return Result.rejected(f"unknown command {type(command).__name__}")


def apply_batch(
    state: StreamState, gateway_id: str, batch_id: str, commands: Iterable[Command], now: datetime
) -> list[Result]:
    """Apply a gateway's batch in order, at most once per `batch_id`."""
    if batch_id in state.applied_batches:
        return state.applied_batches[batch_id]
    results = [apply(state, gateway_id, c, now) for c in commands]
    state.applied_batches[batch_id] = results
    while len(state.applied_batches) > state.batch_memory:
        state.applied_batches.popitem(last=False)
    return results


def take_events(state: StreamState, clock: float, now: datetime | None = None) -> list[Event]:
    """Hand out the events produced since the last call, in order, plus a
    coalesced `stream_update` (and `flash_sale_updated`s) if something
    changed and one is due, and the end of every flash sale whose time is up
    (when `now` is given)."""
    if now is not None:
        flash_sales.end_due_sales(state, now)
    if (state.counters_dirty or state.sales_dirty) and state.update_due_in(clock) == 0.0:
        _emit_updates(state, clock)
    events, state.events = state.events, []
    return events


def stop_stream(state: StreamState) -> Event:
    """The last event of the stream. Running flash sales end, counters
    pending are flushed, then `stream_stopped`."""
    flash_sales.end_all_sales(state, "stream_stopped")
    if state.counters_dirty or state.sales_dirty:
        _emit_updates(state, None)
    return state.emit("stream_stopped", {})


def _emit_updates(state: StreamState, clock: float | None) -> None:
    state.last_update_at = clock
    if state.counters_dirty:
        state.counters_dirty = False
        state.emit(
            "stream_update",
            {
                "viewerCount": state.viewer_count,
                "likes": state.likes,
                "likedByAdded": list(state.liked_added),
                "likedByRemoved": list(state.liked_removed),
            },
        )
        state.liked_added, state.liked_removed = {}, {}
    flash_sales.emit_sale_updates(state)


@dataclass(frozen=True)
class CommitInput:
    """Everything one commit applies: replaying the same inputs on the same
    state gives the same results and the same events."""

    batches: list[tuple[str, str, list[Command]]]  # (gateway id, batch id, commands)
    now: datetime  # wall clock, for what is shown
    clock: float  # seconds since the epoch, for coalescing
    expired_gateways: list[str] = field(default_factory=list)


def apply_commit(state: StreamState, commit: CommitInput) -> tuple[list[list[Result]], list[Event]]:
    """Apply one commit's inputs: every batch in order, the lease expiries,
    then collect the events (with any coalesced update or sale end that is due)."""
    results = [apply_batch(state, gw, batch_id, commands, commit.now) for gw, batch_id, commands in commit.batches]
    for gateway_id in commit.expired_gateways:
        viewers.drop_gateway(state, gateway_id)
    events = take_events(state, commit.clock, commit.now)
    return results, events
