"""How a field of the stream's state is stored in its checkpoint.

A field that survives a restart says so in its declaration:
`field(..., metadata=stored("likedBy", *ORDERED_SET))` gives the checkpoint
document's key (`"moderation.muted"` is the key `muted` inside `moderation`)
and the pair of functions that turn the value into plain, JSON-like data
(`dump`) and back (`load`). `core.checkpoint` derives the whole codec from
these declarations; nothing else lists the fields.

`dump` must return data that shares nothing the state changes later: the
actor stores a checkpoint while the next commands are applied.
"""

from __future__ import annotations

import copy
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.results import Result

STORED = "stored"  # the metadata key of a stored field

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]  # (dump, load)


@dataclass(frozen=True)
class Stored:
    """Where and how one field is stored. `required`: a document without the
    key is refused (KeyError) instead of giving the field its default."""

    key: str
    dump: Callable[[Any], Any]
    load: Callable[[Any], Any]
    required: bool = False

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


def stored(
    key: str, dump: Callable[[Any], Any], load: Callable[[Any], Any], *, required: bool = False
) -> dict[str, Stored]:
    """The metadata of a field stored under `key`, written by `dump` and read by `load`."""
    return {STORED: Stored(key, dump, load, required)}


def _same(value: Any) -> Any:
    return value


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _pairs_load(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def load(pairs: Any) -> OrderedDict[str, Any]:
        return OrderedDict((str(k), convert(v)) for k, v in pairs)

    return load


def records(id_key: str, order: Callable[[dict[str, Any]], Any]) -> Codec:
    """Records by their id (`{id: record}`), stored as a list sorted by `order` (deep copies)."""

    def dump(by_id: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        return copy.deepcopy(sorted(by_id.values(), key=order))

    def load(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {row[id_key]: dict(row) for row in rows}

    return dump, load


INT: Codec = (_same, int)
STR: Codec = (_same, str)
BOOL: Codec = (_same, bool)
OPTIONAL_FLOAT: Codec = (_same, _optional_float)
STRINGS: Codec = (list, lambda xs: [str(x) for x in xs])
STRING_MAP: Codec = (dict, lambda d: {str(k): str(v) for k, v in d.items()})
# An ordered set (`dict[str, None]`), stored as a list in its order.
ORDERED_SET: Codec = (list, dict.fromkeys)
# A set, stored sorted.
SORTED_SET: Codec = (sorted, set)
# `{key: set of strings}`, each set stored sorted.
SET_MAP: Codec = (lambda d: {k: sorted(v) for k, v in d.items()}, lambda d: {k: set(v) for k, v in d.items()})
# An ordered `{str: int}`, stored as `[[key, value], ...]`.
INT_PAIRS: Codec = (lambda d: [[k, v] for k, v in d.items()], _pairs_load(int))
# A deque of ints, stored as a list (its bound is set by the state).
INT_DEQUE: Codec = (list, lambda xs: deque(int(x) for x in xs))
# Client operations: `{sender\x00client id: [seq, data]}`, stored as `[[key, seq, data], ...]`.
CLIENT_OPS: Codec = (
    lambda d: [[k, v[0], v[1]] for k, v in d.items()],
    lambda rows: OrderedDict((k, [seq, data]) for k, seq, data in rows),
)


def _results_dump(batches: OrderedDict[str, list[Result]]) -> list[Any]:
    return [[batch_id, [[r.ok, r.error, r.seq, r.data] for r in results]] for batch_id, results in batches.items()]


def _results_load(rows: list[Any]) -> OrderedDict[str, list[Result]]:
    # Entries written before results carried data have three items.
    return OrderedDict(
        (batch_id, [Result(ok=r[0], error=r[1], seq=r[2], data=r[3] if len(r) > 3 else None) for r in results])
        for batch_id, results in rows
    )


# The answers of recent batches: `{batch id: [Result]}`, stored as `[[batch id, [[ok, error, seq, data]]]]`.
BATCH_RESULTS: Codec = (_results_dump, _results_load)
