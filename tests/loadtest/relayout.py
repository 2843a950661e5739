"""The same JSON with another layout: what a server other than ours (or a later version of it) may send."""

from __future__ import annotations

import json
from typing import Any

import orjson


def relaid(frame: Any) -> bytes:
    """`frame` as JSON with the keys of every object in reverse order and spaces and newlines
    everywhere: the same meaning as the server's compact `type`-first encoding, other bytes."""

    def reverse(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: reverse(v) for k, v in reversed(list(x.items()))}
        if isinstance(x, list):
            return [reverse(v) for v in x]
        return x

    text = b"  " + json.dumps(reverse(frame), indent=2, separators=(" , ", " : ")).encode() + b"\n"
    assert text != orjson.dumps(frame)
    return text
