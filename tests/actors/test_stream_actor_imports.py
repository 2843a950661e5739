"""A live stream's actor process loads only what a stream needs: asked inside a
real stream actor on a real Ray cluster (after it loaded its stream), none of
the web stack (FastAPI, uvicorn, the gateway and its REST models) is among the
modules its process has imported.

Starlette is not in the list: Ray's own serializer imports
`starlette.datastructures` in every worker whenever starlette is installed
(`ray/util/serialization_addons.py`), whatever the actor imports; a stream
node installed without the web stack does without it."""

from __future__ import annotations

import sys
from uuid import uuid4

import pytest

from actors import stream_lifecycle
from actors.config import ActorConfig
from actors.stream_client import StreamClient
from persistence.database import DatabaseConfig
from persistence.embedded import EmbeddedMongo

pytestmark = pytest.mark.system

WEB_STACK = ("fastapi", "uvicorn", "gateway", "httpx", "websockets", "pydantic_settings", "loadtest", "wrencos")


def _top_level_modules(_actor: object) -> list[str]:
    """Run inside the actor (Ray's `__ray_call__`): the top-level packages its process has imported."""
    return sorted({name.split(".")[0] for name in sys.modules})


async def test_a_live_stream_actor_imports_no_web_stack(ray_cluster: str, embedded_db: EmbeddedMongo) -> None:
    config = ActorConfig(db=DatabaseConfig(uri=embedded_db.uri, name=f"t{uuid4().hex[:8]}"), spare_actors=0)
    stream_id = uuid4().hex[:24]
    handle = stream_lifecycle.create_stream_actor(stream_id, {"streamId": stream_id, "title": "imports"}, config)
    try:
        await StreamClient(handle, stream_id).ready()
        # A probe, not a call of the stream's: `__ray_call__` runs a function in the actor's process.
        loaded = await handle.__ray_call__.remote(_top_level_modules)
        assert {"actors", "core", "persistence", "pymongo"} <= set(loaded), "the probe sees the actor's modules"
        web = sorted(set(loaded) & set(WEB_STACK))
        assert web == [], f"a stream actor's process imported {web}"
    finally:
        stream_lifecycle.kill(handle)
