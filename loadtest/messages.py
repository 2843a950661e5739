"""What the tester puts in the messages it sends, so receipts can be matched.

A chat message text is `lt1 <runId> <worker> <n> <sendNs>[ <padding>]`:
`runId` tells this run's messages from anyone else's (another machine's run
counts as foreign and is never used for latency, since its clock is not ours),
`worker`-`n` is the unique id of the message (and the content order of one
sender), `sendNs` is `time.time_ns()` taken right before the frame was
written. Pinned products are `lt-<runId>-<n>` with the name `lt1 pin <sendNs>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

PREFIX = "lt1 "


class Mark(NamedTuple):
    """Who sent a tester's chat message, and when (any run's)."""

    run_id: str
    worker: int
    n: int
    send_ns: int


@dataclass(slots=True)
class OwnMark:
    """A chat message of this run: its sender (`worker`), its number there (`n`), its send time.
    (A slotted class: built once per message and read by every viewer, cheaper both ways than a tuple type.)"""

    worker: int
    n: int
    send_ns: int


class PinMark(NamedTuple):
    """A product pinned by this run: its number and its send time."""

    n: int
    send_ns: int


def chat_text(run_id: str, worker: int, n: int, send_ns: int, pad_to: int = 0) -> str:
    text = f"{PREFIX}{run_id} {worker} {n} {send_ns}"
    if pad_to > len(text) + 1:
        text += " " + "x" * (pad_to - len(text) - 1)
    return text


def parse_chat(text: object) -> Mark | None:
    """The mark in a chat text, or None if it is not a tester's message."""
    if not isinstance(text, str) or not text.startswith(PREFIX):
        return None
    parts = text.split(" ", 5)
    if len(parts) < 5:
        return None
    try:
        return Mark(parts[1], int(parts[2]), int(parts[3]), int(parts[4]))
    except ValueError:
        return None


def own_prefix(run_id: str) -> str:
    """What every chat text of run `run_id` starts with."""
    return f"{PREFIX}{run_id} "


def parse_own(text: str, prefix: str) -> OwnMark | None:
    """The mark of a chat text that starts with `prefix` (`own_prefix(runId)`), None if it
    does not parse: for such texts, the same answer as `parse_chat` (without the run id), cheaper."""
    parts = text.split(" ", 5)
    try:
        return OwnMark(int(parts[2]), int(parts[3]), int(parts[4]))
    except (ValueError, IndexError):
        return None


def pin_name(run_id: str, n: int, send_ns: int) -> str:
    """The catalogue name of the `n`th product run `run_id` pins. A pin shows the product's name from the
    catalogue, so the name carries the run, the number and the send time (taken just before the product
    is created: the pin's measured fan-out includes that one REST call)."""
    return f"lt1 pin {run_id} {n} {send_ns}"


def parse_pin(run_id: str, product: dict[str, object]) -> PinMark | None:
    """The mark of a product this run pinned, else None."""
    name = product.get("name")
    if not isinstance(name, str):
        return None
    parts = name.split(" ")
    if len(parts) != 5 or parts[0] != "lt1" or parts[1] != "pin" or parts[2] != run_id:
        return None
    try:
        return PinMark(int(parts[3]), int(parts[4]))
    except ValueError:
        return None
