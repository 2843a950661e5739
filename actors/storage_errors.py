"""Which storage errors are worth trying again: one pure function, `classify`.

Guarantees:

* **Transient** (tried again, with capped backoff, while the stream reports
  itself degraded): the database unreachable or not answering in time, or
  not the primary right now. PyMongo's `ConnectionFailure` family
  (`AutoReconnect`, `NetworkTimeout`, `NotPrimaryError`, server selection and
  pool wait timeouts), any `PyMongoError` whose `.timeout` is true, an error
  labelled retryable by the server, a server error code of the same kinds
  (stepping down, shutting down, time limit exceeded), and `OSError` /
  `TimeoutError` from the transport.
* **Fenced**: `StaleWriter` (a newer instance of the actor wrote first). Its
  meaning is the journal's, never retried.
* **Permanent**: everything else; trying again would fail the same way (a
  document too large or invalid, a write error other than the fencing
  duplicate key, which the journal already turned into `StaleWriter`, a bug).
"""

from __future__ import annotations

from enum import Enum

from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from persistence.journal import StaleWriter


class StorageError(Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    FENCED = "fenced"


# Server error codes that say "not now" rather than "never": the node is stepping down, shutting
# down, not the primary, unreachable, or the operation ran out of time.
TRANSIENT_CODES = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        50,  # MaxTimeMSExpired
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)
TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError")


def classify(error: BaseException) -> StorageError:
    """Whether `error`, raised by a storage call, is worth trying again."""
    if isinstance(error, StaleWriter):
        return StorageError.FENCED
    if isinstance(error, ConnectionFailure):
        return StorageError.TRANSIENT
    if isinstance(error, PyMongoError):
        if error.timeout or any(error.has_error_label(label) for label in TRANSIENT_LABELS):
            return StorageError.TRANSIENT
        if isinstance(error, OperationFailure) and error.code in TRANSIENT_CODES:
            return StorageError.TRANSIENT
        return StorageError.PERMANENT
    if isinstance(error, (OSError, TimeoutError)):
        return StorageError.TRANSIENT
    return StorageError.PERMANENT
