"""Shared fixtures. Fast tests need none of these; system tests start real
processes: the embedded database, a Ray cluster and gateways.

With `MONGODB_URI` set (for example `MONGODB_URI=mongodb://host:27017/?replicaSet=rs0 make test`),
every test that needs a database uses that MongoDB instead of the embedded
server, in databases of its own that are dropped at the end; the one step a
test cannot do there (restarting the server) is skipped and says so.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from xdist.remote import Producer

from actors.ray_env import apply_ray_env
from tests.support.databases import DatabaseServer, ExternalMongo, SessionMongo
from tests.support.groups import GroupClock, GroupScheduling

# Before any test module imports Ray (it reads part of this on import) or starts a cluster (its
# processes inherit it): the tests' clusters run as ours do.
apply_ray_env(os.environ)

# A suite started in the background of a script (`make test &` with no job control) inherits SIGINT
# ignored, and so would every process it starts: the tests that press Ctrl-C on `wrencos run`
# (tests/system/test_first_hour.py) need it as a terminal gives it. Set here, in each pytest process.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# `make test` runs two groups of tests side by side, one xdist worker each; see tests/support/groups.py.
_clock = GroupClock()


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own schedulers
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> GroupScheduling | None:
    return GroupScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _clock.record(report)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_sep("=", "wall time per group (tests/support/groups.py)")
    for line in _clock.lines():
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def namespace() -> str:
    return f"test-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def embedded_db(tmp_path_factory: pytest.TempPathFactory, namespace: str) -> Iterator[DatabaseServer]:
    """The session's database server: the embedded nx-27017, or `MONGODB_URI`."""
    uri = os.environ.get("MONGODB_URI")
    if uri:
        from pymongo import MongoClient

        db = ExternalMongo(uri, f"wrencos_{namespace.replace('-', '_')}")
        yield db
        client: MongoClient[dict[str, Any]] = MongoClient(uri)
        with client:  # drop what this session created
            for name in client.list_database_names():
                if name == db.db_name or (len(name) == 9 and name.startswith("t") and name[1:].isalnum()):
                    client.drop_database(name)
        return
    embedded = SessionMongo(tmp_path_factory.mktemp("db"))
    embedded.start()
    yield embedded
    embedded.stop()


@pytest.fixture(scope="session")
def ray_cluster(namespace: str) -> Iterator[str]:
    """A real local Ray cluster; yields its address for gateways to join."""
    import ray

    from actors.placement import SINGLE_NODE_RESOURCES

    ray.init(
        address="local",
        namespace=namespace,
        include_dashboard=False,
        num_cpus=2,
        resources=SINGLE_NODE_RESOURCES,
        configure_logging=False,
        log_to_driver=False,
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")
