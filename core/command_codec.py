"""Commands and commits as plain documents, for the journal.

A command becomes `{"kind": "Chat", ...fields}`; a commit becomes a journal
entry holding its inputs and the events it published. Decoding gives back
equal commands (tuples come back as tuples) and the same commit inputs, so a
journal entry replays exactly what was applied.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from core import stream_state as s
from runtime.clock import iso

_KINDS: dict[str, type] = {
    cls.__name__: cls
    for cls in (s.Join, s.Leave, s.SyncViewers, s.GatewayGone, s.Chat, s.ToggleLike, s.PinProduct,
                s.UnpinProduct, s.StartFlashSale, s.FlashSaleChanged, s.EndFlashSale,
                s.DeleteMessage, s.Mute, s.Unmute, s.SetBlockedWords, s.SetSlowMode)
}


def command_to_doc(command: s.Command) -> dict[str, Any]:
    doc = {f.name: getattr(command, f.name) for f in dataclasses.fields(command)}
    for key, value in doc.items():
        if isinstance(value, tuple):
            doc[key] = list(value)
    return {"kind": type(command).__name__, **doc}


def command_from_doc(doc: dict[str, Any]) -> s.Command:
    fields = dict(doc)
    cls = _KINDS.get(fields.pop("kind", ""))
    if cls is None:
        raise ValueError(f"unknown command kind in journal: {doc.get('kind')!r}")
    for f in dataclasses.fields(cls):
        if f.type in ("tuple[str, ...]",) and isinstance(fields.get(f.name), list):
            fields[f.name] = tuple(fields[f.name])
    return cls(**fields)  # type: ignore[no-any-return]


def commit_to_entry(commit: s.CommitInput, epoch: str, encoded: list[tuple[int, str]]) -> dict[str, Any]:
    """A journal entry: the commit's inputs and the (seq, text) events it published."""
    return {
        "epoch": epoch,
        "at": iso(commit.now),
        "clock": commit.clock,
        "expired": list(commit.expired_gateways),
        "batches": [{"gateway": gw, "batchId": bid, "commands": [command_to_doc(c) for c in cmds]}
                    for gw, bid, cmds in commit.batches],
        "events": [[seq, text] for seq, text in encoded],
    }


def commit_from_entry(entry: dict[str, Any]) -> s.CommitInput:
    return s.CommitInput(
        batches=[(b["gateway"], b["batchId"], [command_from_doc(c) for c in b["commands"]]) for b in entry["batches"]],
        # What the core shows of `now` is millisecond ISO text, which `at` holds exactly.
        now=datetime.fromisoformat(entry["at"]),
        clock=float(entry["clock"]),
        expired_gateways=list(entry.get("expired", [])),
    )
