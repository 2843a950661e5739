"""The checkpoint of a stream's state, derived from the state's declaration.

Every field of `StreamState` declared with `stored(key, dump, load)` is
written under its key and read back from it; nothing here lists the fields.
A key missing from a document (one written before the field existed) gives
the field its default, unless the field is `required`.

The document format is the one stored since checkpoints began (same keys,
same layout): a document written by an older version loads, and one written
now is read by it. Chat is not in it (it is stored on its own and passed to
`from_checkpoint`); configuration (`history_size`, `update_interval`) comes
from the caller.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable
from typing import Any

from core.events import ChatRecord
from core.state import StreamState
from core.stored import STORED, Stored

_MISSING = object()


def stored_fields() -> list[tuple[str, Stored]]:
    """(field name, how it is stored) for every stored field of `StreamState`."""
    return [(f.name, f.metadata[STORED]) for f in dataclasses.fields(StreamState) if STORED in f.metadata]


_STORED = stored_fields()


def to_checkpoint(state: StreamState) -> dict[str, Any]:
    """Everything needed to come back exactly, except chat (stored on its own).
    Shares nothing the state changes later, so it can be stored while commands go on."""
    doc: dict[str, Any] = {}
    for name, how in _STORED:
        *parents, last = how.path
        into = doc
        for key in parents:
            into = into.setdefault(key, {})
        into[last] = how.dump(getattr(state, name))
    return doc


def from_checkpoint(
    doc: dict[str, Any],
    recent_chat: Iterable[ChatRecord],
    *,
    history_size: int = 50,
    update_interval: float = 0.25,
) -> StreamState:
    """Rebuild from `to_checkpoint()` output and the stored recent chat
    (oldest first; messages deleted since are left out).

    The results of recent batches come back too, so a batch replayed
    after a restart gets the same answers and changes nothing.
    """
    values: dict[str, Any] = {}
    for name, how in _STORED:
        raw = _lookup(doc, how.path)
        if raw is _MISSING:
            if how.required:
                raise KeyError(f"checkpoint lacks {how.key!r}")
            continue
        values[name] = how.load(raw)
    gone = set(values.get("deleted_seqs", ()))
    chat = deque(r for r in recent_chat if r.seq not in gone)
    return StreamState(**values, recent_chat=chat, history_size=history_size, update_interval=update_interval)


def _lookup(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = doc
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value
