"""`classify`: which storage errors are tried again (pure: no database)."""

from __future__ import annotations

import pytest
from bson.errors import InvalidDocument
from pymongo.errors import (
    AutoReconnect,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteError,
    WTimeoutError,
)

from actors.storage_errors import StorageError, classify
from persistence.journal import StaleWriter


class LabelledError(PyMongoError):
    """A server error carrying a retryable label (PyMongo adds labels from the server's reply)."""

    def __init__(self, label: str) -> None:
        super().__init__("labelled")
        self._error_labels = {label}


@pytest.mark.parametrize(
    "error",
    [
        AutoReconnect("connection reset"),
        NetworkTimeout("timed out"),
        NotPrimaryError("not primary"),
        ServerSelectionTimeoutError("no server"),
        ExecutionTimeout("operation exceeded time limit", code=50),
        WTimeoutError("write concern timed out", code=64),
        OperationFailure("stepping down", code=189),
        OperationFailure("shutting down", code=91),
        LabelledError("RetryableWriteError"),
        ConnectionResetError("reset by peer"),
        TimeoutError(),
    ],
    ids=repr,
)
def test_unreachable_slow_or_not_primary_is_transient(error: BaseException) -> None:
    assert classify(error) is StorageError.TRANSIENT


@pytest.mark.parametrize(
    "error",
    [
        DocumentTooLarge("BSON document too large (17000000 bytes)"),
        InvalidDocument("cannot encode object"),
        WriteError("document failed validation", code=121),
        DuplicateKeyError("E11000 duplicate key on another index", code=11000),
        OperationFailure("unauthorized", code=13),
        PyMongoError("something else"),
        ValueError("a bug"),
        KeyError("version"),
    ],
    ids=repr,
)
def test_what_would_fail_again_the_same_way_is_permanent(error: BaseException) -> None:
    assert classify(error) is StorageError.PERMANENT


def test_a_newer_writer_is_fencing_never_retried() -> None:
    assert classify(StaleWriter("s1 version 3 was written by another instance")) is StorageError.FENCED
