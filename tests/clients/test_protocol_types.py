"""The JS client's types are the gateway's frame models: `clients/js/src/protocol.ts`
is exactly what its generator writes from the AsyncAPI document."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from gateway.realtime.asyncapi import document

JS = Path(__file__).resolve().parents[2] / "clients" / "js"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_types", JS / "scripts" / "gen_types.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_types_are_generated_from_the_document() -> None:
    expected = generator().render(document())
    assert (JS / "src" / "protocol.ts").read_text() == expected, (
        "clients/js/src/protocol.ts is stale: run `.venv/bin/python clients/js/scripts/gen_types.py`"
    )


def test_a_change_of_a_model_changes_the_types() -> None:
    doc = document()
    doc["components"]["schemas"]["Ack"]["properties"]["surprise"] = {"type": "string"}
    rendered = generator().render(doc)
    assert "  surprise?: string;" in rendered and rendered != (JS / "src" / "protocol.ts").read_text()


def test_every_frame_is_in_the_unions_and_the_version_is_the_protocols() -> None:
    text = (JS / "src" / "protocol.ts").read_text()
    doc = document()
    assert f"export const PROTOCOL_VERSION = {json.dumps(doc['info']['version'])};" in text
    server = next(line for line in text.splitlines() if line.startswith("export type ServerFrame"))
    client = next(line for line in text.splitlines() if line.startswith("export type ClientFrame"))
    assert server.count("|") + 1 == sum(1 for k in doc["components"]["messages"] if k.startswith("server."))
    assert client.count("|") + 1 == sum(1 for k in doc["components"]["messages"] if k.startswith("client."))
