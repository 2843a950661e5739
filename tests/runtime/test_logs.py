"""Console logs carry no colour codes unless stderr is a terminal, and neither do Ray's prefixes."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
import structlog

from runtime.logs import configure, resolved_format


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """configure() binds the captured stderr; the rest of the session must not log into it once closed."""
    saved, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    yield
    structlog.configure(**saved)
    logging.getLogger().handlers[:] = handlers


def test_console_format_into_a_file_has_no_colour(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_COLOR_PREFIX", "unset below")  # so that monkeypatch restores it afterwards
    monkeypatch.delenv("RAY_COLOR_PREFIX")
    configure("info", "console")  # pytest's captured stderr is not a terminal
    structlog.get_logger("t").info("plain_line", answer=42)
    err = capsys.readouterr().err
    assert "plain_line" in err and "answer=42" in err
    assert "\x1b[" not in err and not err.lstrip().startswith("{")
    assert os.environ["RAY_COLOR_PREFIX"] == "0"


def test_auto_is_json_off_a_terminal() -> None:
    assert resolved_format("auto") == "json"
    assert resolved_format("console") == "console"
