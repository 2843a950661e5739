"""The database a command on this machine uses: the one `wrencos run` uses.

- With `MONGODB_URI`: that database.
- Else the embedded one in `WRENCOS_DATA_DIR`. While `wrencos run` runs it holds the
  data directory's lock (`wrencos.preflight.DataDirLock`) and publishes its embedded
  database's address in `<data dir>/db.uri` (`published`); a command connects there.
  When nothing runs, the command takes the lock itself and starts the embedded database
  for as long as it needs it, so it works before the first `make run` as well.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from persistence.database import DatabaseConfig
from persistence.embedded import EmbeddedMongo
from runtime.settings import ConfigError, Settings
from wrencos.command_errors import CANNOT_RUN, CommandError
from wrencos.preflight import DataDirLock

URI_FILE = "db.uri"


@contextmanager
def published(data_dir: Path, uri: str) -> Iterator[None]:
    """Tell commands on this machine where the running embedded database listens."""
    path = data_dir / URI_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(uri + "\n")
    os.replace(tmp, path)  # a reader sees the whole address or none
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def config_for(settings: Settings, uri: str) -> DatabaseConfig:
    """As the gateway connects (`gateway.app.database_config`)."""
    return DatabaseConfig(uri=uri, name=settings.mongodb_db, write_concern=settings.mongodb_write_concern)


@contextmanager
def database_uri(settings: Settings) -> Iterator[str]:
    """The URI of the database `wrencos run` uses (see the module's docstring); the embedded
    database is started for the duration when no `wrencos run` has it running."""
    if settings.mongodb_uri:
        yield settings.mongodb_uri
        return
    lock = DataDirLock(settings.data_dir)
    try:
        lock.acquire()
    except ConfigError:  # a `wrencos run` holds the data directory: use its database
        path = settings.data_dir / URI_FILE
        if not path.exists():
            raise CommandError(
                f"the wrencos running on {settings.data_dir} has not started its database yet: try again shortly",
                CANNOT_RUN,
            ) from None
        yield path.read_text().strip()
        return
    try:
        try:
            db = EmbeddedMongo(settings.data_dir, port=settings.db_port).start()
        except RuntimeError as e:
            raise CommandError(f"cannot start the embedded database in {settings.data_dir}: {e}", CANNOT_RUN) from None
        try:
            yield db.uri
        finally:
            db.stop()
    finally:
        lock.release()
