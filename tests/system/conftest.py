"""System fixtures: a real Ray cluster, the real embedded database and a real
gateway process serving HTTP and WebSocket on a real port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import DatabaseServer
from tests.support.processes import start_gateway


@pytest.fixture(scope="session")
def gateway_url(ray_cluster: str, embedded_db: DatabaseServer, namespace: str, log_dir: Path) -> Iterator[str]:
    proc, url = start_gateway(ray_cluster, embedded_db.uri, namespace, log_dir, db_name=embedded_db.db_name)
    yield url
    proc.terminate()


@pytest.fixture(scope="session")
def ws_url(gateway_url: str) -> str:
    return gateway_url.replace("http://", "ws://") + "/"
