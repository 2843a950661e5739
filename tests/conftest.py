"""Shared fixtures. Fast tests need none of these; system tests start real
processes: the embedded database, a Ray cluster and gateways."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Iterator

import pytest

from persistence.embedded import EmbeddedMongo


@pytest.fixture(scope="session")
def embedded_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMongo]:
    """One real nx-27017 server for the session."""
    db = EmbeddedMongo(tmp_path_factory.mktemp("db")).start()
    yield db
    db.stop()


@pytest.fixture(scope="session")
def namespace() -> str:
    return f"test-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def ray_cluster(namespace: str) -> Iterator[str]:
    """A real local Ray cluster; yields its address for gateways to join."""
    import ray

    ray.init(address="local", namespace=namespace, include_dashboard=False, num_cpus=2,
             configure_logging=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")
