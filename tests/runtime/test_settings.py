"""`load_settings`: every wrong value is one line naming the variable, what it got and what it takes."""

from __future__ import annotations

import pytest

from runtime.settings import ConfigError, load_settings


def test_defaults_load() -> None:
    settings = load_settings()
    assert settings.port == 3000 and settings.log_format == "auto"


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        ({"PORT": "65536"}, "PORT=65536 is not valid: it should be a port number from 1 to 65535"),
        ({"WRENCOS_DB_PORT": "-1"}, "WRENCOS_DB_PORT=-1 is not valid: it should be a port number from 1 to 65535"),
        (
            {"LOG_LEVEL": "loud"},
            "LOG_LEVEL=loud is not valid: it should be one of debug, info, warning, error, critical",
        ),
        (
            {"WS_IDLE_TIMEOUT_SECONDS": "-3"},
            "WS_IDLE_TIMEOUT_SECONDS=-3 is not valid: it should be greater than or equal to 0",
        ),
        ({"MONGODB_WAIT_SECONDS": "0"}, "MONGODB_WAIT_SECONDS=0 is not valid: it should be greater than 0"),
    ],
)
def test_a_wrong_value_is_one_line(overrides: dict[str, str], line: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(**overrides)
    assert str(raised.value) == line


def test_the_admin_password_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(ADMIN_PASSWORD="short7!")
    assert "short7!" not in str(raised.value) and str(raised.value).startswith("ADMIN_PASSWORD=(hidden)")
    assert load_settings(ADMIN_PASSWORD="eight-ok").admin_password == "eight-ok"


def test_log_level_is_case_blind() -> None:
    assert load_settings(LOG_LEVEL="WARNING").log_level == "warning"
