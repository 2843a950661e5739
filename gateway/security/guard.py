"""The injection guard: no client object that looks like a query operator gets in.

MongoDB reads keys that start with `$` as operators (`{"$gt": ""}` matches
everything, `$where` runs code). Every REST body and WebSocket frame is
scanned: an object key that starts with `$` (at any depth) inside any field
the schema declares refuses the whole request, with a 422 or an error frame.
Fields the schema does not declare are ignored (dropped before anything reads
them), so REST bodies are scanned along their model; frames are scanned whole.
The schemas then type every field, so an object can never stand where a string
or a number belongs; and the stores build every query from those typed values,
never from a client's dict (see `persistence/`).
"""

from __future__ import annotations

import types
import typing
from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from gateway.errors import ApiError

MAX_DEPTH = 32  # deeper than any schema here: refused too


class OperatorFound(ValueError):
    """A client value carries a `$` key (or nests too deep)."""


def find_operator(value: Any, where: str = "", depth: int = 0) -> str | None:
    """Where the first `$` key is in `value` (a dotted path), or None.
    Raises `OperatorFound` for nesting deeper than `MAX_DEPTH`."""
    if depth > MAX_DEPTH:
        raise OperatorFound(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and key.startswith("$"):
                return path
            found = find_operator(item, path, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = find_operator(item, f"{where}.{i}" if where else str(i), depth + 1)
            if found is not None:
                return found
    return None


def _unwrap(annotation: Any) -> list[Any]:
    """The types an annotation allows (Optional, Union and Annotated unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def find_operator_in(value: Any, annotation: Any, where: str = "", depth: int = 0) -> str | None:
    """Like `find_operator`, but only inside the fields that `annotation` (a
    pydantic model, a list of them...) declares: undeclared keys are ignored."""
    if depth > MAX_DEPTH:
        raise OperatorFound(f"nested deeper than {MAX_DEPTH} levels")
    options = _unwrap(annotation)
    model = next((t for t in options if isinstance(t, type) and issubclass(t, BaseModel)), None)
    if model is not None and isinstance(value, dict):
        for name, field in model.model_fields.items():
            key = field.alias or name
            if key in value:
                found = find_operator_in(value[key], field.annotation, f"{where}.{key}" if where else key, depth + 1)
                if found is not None:
                    return found
        return None
    items = next((typing.get_args(t)[0] for t in options if typing.get_origin(t) is list and typing.get_args(t)), None)
    if items is not None and isinstance(value, list):
        for i, item in enumerate(value):
            found = find_operator_in(item, items, f"{where}.{i}" if where else str(i), depth + 1)
            if found is not None:
                return found
        return None
    return find_operator(value, where, depth)


def operator_message(value: Any, annotation: Any = None) -> str | None:
    """The refusal text for `value` (scanned along `annotation` if given), or None when it is clean."""
    try:
        where = find_operator(value) if annotation is None else find_operator_in(value, annotation)
    except OperatorFound as e:
        return f"Invalid request: {e}"
    if where is None:
        return None
    return f"Invalid request: {where}: keys starting with '$' are not allowed"


async def reject_operators(request: HTTPConnection) -> None:
    """App-wide REST dependency: a JSON body with a `$` key anywhere is a 422.
    (WebSocket frames are checked by `protocol.parse_frame`.)"""
    if not isinstance(request, Request) or request.method in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return
    body = await request.body()
    if not body or b"$" not in body:
        return
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return  # the route's own validation answers a 422 for bad JSON
    body_field = getattr(request.scope.get("route"), "body_field", None)
    annotation = getattr(getattr(body_field, "field_info", None), "annotation", None)
    message = operator_message(data, annotation)
    if message is not None:
        raise ApiError(422, message, "validation_error")
