"""Reading the repository's Markdown the way GitHub renders it: headings and their anchors,
sections, links and table rows. Enough for the documentation tests; no Markdown library."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_HEADING = re.compile(r"^(#{1,6}) +(.*?) *#*$")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?: +\"[^\"]*\")?\)")
_CODE_SPAN = re.compile(r"`[^`]*`")


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.split("\n"), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: code spans and links keep their text; lower case; every
    character but letters, digits, `_`, `-` and spaces dropped; spaces become `-`."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def headings(text: str) -> list[tuple[int, str]]:
    """(level, text) of every heading, in order."""
    found = []
    for _, line in prose_lines(text):
        m = _HEADING.match(line)
        if m:
            found.append((len(m.group(1)), m.group(2)))
    return found


def anchors(text: str) -> set[str]:
    """Every heading's anchor, repeated ones numbered as GitHub numbers them (`-1`, `-2`...)."""
    seen: dict[str, int] = {}
    result = set()
    for _, title in headings(text):
        base = slug(title)
        n = seen.get(base, 0)
        result.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return result


def links(text: str) -> Iterator[tuple[int, str]]:
    """(line number, target) of every inline link outside code blocks and code spans."""
    for number, line in prose_lines(text):
        for m in _LINK.finditer(_CODE_SPAN.sub("", line)):
            yield number, m.group(1)


def section(text: str, title: str) -> str:
    """The text under the heading `title`, up to the next heading of the same or a higher level."""
    lines = text.split("\n")
    level = None
    out: list[str] = []
    fenced = False
    for line in lines:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        m = None if fenced else _HEADING.match(line)
        if level is None:
            if m and m.group(2) == title:
                level = len(m.group(1))
            continue
        if m and len(m.group(1)) <= level:
            break
        out.append(line)
    if level is None:
        raise AssertionError(f"no heading {title!r}")
    return "\n".join(out)


def table_rows(text: str) -> list[list[str]]:
    """The cells of every body row of every table in `text` (a header is the row right above a
    `|---|` separator). A `|` inside a code span or escaped (`\\|`) does not split cells."""
    rows: list[list[str]] = []
    for _, line in prose_lines(text):
        stripped = line.strip()
        if not stripped.startswith("|"):
            continue
        protected = _CODE_SPAN.sub(lambda m: m.group(0).replace("|", "\0"), stripped.replace("\\|", "\0"))
        cells = [c.strip().replace("\0", "|") for c in protected.strip("|").split("|")]
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            rows.pop()  # the header
            continue
        rows.append(cells)
    return rows


def code_spans(text: str) -> set[str]:
    """The text of every code span (`` `x` ``) in `text`."""
    return {m.group(0)[1:-1] for m in _CODE_SPAN.finditer(text)}
