"""Commands and commits as plain documents, for the journal.

A command becomes `{"kind": "Chat", ...fields}`; a commit becomes a journal
entry holding its inputs and the events it published. Decoding gives back
equal commands and the same commit inputs, so a journal entry replays exactly
what was applied.

Derived, not listed: the kinds are `core.commands.COMMAND_TYPES` by class
name, and each field is converted back by its declared type (read with
`typing.get_type_hints`): a tuple field (`tuple[str, ...]`) comes back as a
tuple from the list a document holds. A field missing from a document (an
entry written before the field existed) takes its default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any

from core.commands import COMMAND_TYPES, Command
from core.commit import CommitInput
from runtime.clock import iso

Convert = Callable[[Any], Any]


def _converter(hint: Any) -> Convert | None:
    """How to turn a document's value back into a value of type `hint`
    (None: as it is). Raises TypeError for a type the journal cannot hold."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"journal codec: only variable-length tuples are supported, not {hint}")
        item = _converter(args[0])
        return tuple if item is None else (lambda v: tuple(item(x) for x in v))
    if origin in (typing.Union, types.UnionType):
        inner = [c for c in (_converter(a) for a in args if a is not type(None)) if c is not None]
        if not inner:
            return None
        if len(inner) > 1:
            raise TypeError(f"journal codec: a union of converted types is ambiguous: {hint}")
        convert = inner[0]
        return lambda v: None if v is None else convert(v)
    if hint in (str, int, float, bool, type(None), Any) or origin is dict or hint is dict:
        return None
    raise TypeError(f"journal codec: no conversion for a field of type {hint}")


def _field_converters(cls: type[Command]) -> dict[str, Convert]:
    hints = typing.get_type_hints(cls)
    converters: dict[str, Convert] = {}
    for f in dataclasses.fields(cls):
        convert = _converter(hints[f.name])
        if convert is not None:
            converters[f.name] = convert
    return converters


# kind -> (command class, converters of the fields that need one); built once, at import.
_KINDS: dict[str, tuple[type[Command], dict[str, Convert]]] = {
    cls.__name__: (cls, _field_converters(cls)) for cls in COMMAND_TYPES
}


def command_to_doc(command: Command) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": type(command).__name__}
    for f in dataclasses.fields(command):
        value = getattr(command, f.name)
        doc[f.name] = list(value) if isinstance(value, tuple) else value
    return doc


def command_from_doc(doc: dict[str, Any]) -> Command:
    fields = dict(doc)
    kind = _KINDS.get(fields.pop("kind", ""))
    if kind is None:
        raise ValueError(f"unknown command kind in journal: {doc.get('kind')!r}")
    cls, converters = kind
    for name, convert in converters.items():
        if name in fields:
            fields[name] = convert(fields[name])
    return cls(**fields)


def commit_to_entry(commit: CommitInput, epoch: str, encoded: list[tuple[int, str]]) -> dict[str, Any]:
    """A journal entry: the commit's inputs and the (seq, text) events it published."""
    return {
        "epoch": epoch,
        "at": iso(commit.now),
        "clock": commit.clock,
        "expired": list(commit.expired_gateways),
        "batches": [
            {"gateway": gw, "batchId": bid, "commands": [command_to_doc(c) for c in cmds]}
            for gw, bid, cmds in commit.batches
        ],
        "events": [[seq, text] for seq, text in encoded],
    }


def commit_from_entry(entry: dict[str, Any]) -> CommitInput:
    return CommitInput(
        batches=[(b["gateway"], b["batchId"], [command_from_doc(c) for c in b["commands"]]) for b in entry["batches"]],
        # What the core shows of `now` is millisecond ISO text, which `at` holds exactly.
        now=datetime.fromisoformat(entry["at"]),
        clock=float(entry["clock"]),
        expired_gateways=list(entry.get("expired", [])),
    )
