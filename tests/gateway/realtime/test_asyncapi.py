"""The AsyncAPI document: valid by the official parser (`@asyncapi/parser`, run
by Node), and naming every frame type the gateway accepts or sends."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.realtime import outbound, protocol
from gateway.realtime.asyncapi import PROTOCOL_VERSION, document, frame_types
from tests.clients.node import node, npm_ready

ROOT = Path(__file__).resolve().parents[3]
# Where frames are built: the stream's rules emit events, the rest write `"type": ...` literally.
FRAME_SOURCES = [
    ROOT / "core" / "commit.py",
    ROOT / "core" / "stream_view.py",
    ROOT / "gateway" / "realtime" / "ws_session.py",
    ROOT / "gateway" / "realtime" / "protocol.py",
    *sorted((ROOT / "core" / "rules").glob("*.py")),
    *sorted((ROOT / "gateway" / "streams").glob("*.py")),
]


def validate(docs: list[dict[str, Any]], tmp_path: Path) -> tuple[int, list[dict[str, Any]]]:
    """The parser's exit code, and its report on each document."""
    js = npm_ready()
    paths = []
    for i, doc in enumerate(docs):
        paths.append(tmp_path / f"asyncapi-{i}.json")
        paths[-1].write_text(json.dumps(doc))
    done = subprocess.run(
        [node(), "scripts/validate-asyncapi.mjs", *map(str, paths)], cwd=js, capture_output=True, text=True, timeout=120
    )
    return done.returncode, [json.loads(line) for line in done.stdout.strip().splitlines()]


def test_the_document_is_valid_asyncapi_3_by_the_official_parser(tmp_path: Path) -> None:
    rc, [report] = validate([document()], tmp_path)
    assert (rc, report["errors"], report["parsed"], report["version"]) == (0, [], True, "3.0.0"), report


def test_the_parser_refuses_a_broken_document(tmp_path: Path) -> None:
    """The check above can fail: the same parser on a document with an operation of
    an unknown action, and on one with OpenAPI's discriminator object."""
    bad_action, bad_discriminator = document(), document()
    bad_action["operations"]["send.ack"]["action"] = "publish"
    bad_discriminator["components"]["schemas"]["Batch"]["discriminator"] = {"propertyName": "type"}
    rc, reports = validate([bad_action, bad_discriminator], tmp_path)
    assert rc == 1
    assert any("action" in e["path"] for e in reports[0]["errors"]), reports[0]
    assert any("discriminator" in e["message"] for e in reports[1]["errors"]), reports[1]


def test_every_frame_type_the_gateway_accepts_or_sends_is_in_it() -> None:
    received, sent = frame_types(document())
    assert received == set(protocol.FRAME_TYPES)
    in_code: set[str] = set()
    for path in FRAME_SOURCES:
        text = path.read_text()
        in_code |= set(re.findall(r'"type":\s*"(\w+)"', text)) | set(re.findall(r'emit\(\s*"(\w+)"', text))
    assert len(in_code) > 15, "the scan found the frames"
    assert in_code - set(protocol.FRAME_TYPES) <= sent, f"sent but not in the document: {in_code - sent}"
    assert sent == set(outbound.OUTBOUND_TYPES)


def test_each_message_names_its_payload_and_the_client_package_has_the_protocols_version() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    for message in doc["components"]["messages"].values():
        payload = schemas[message["payload"]["$ref"].rsplit("/", 1)[1]]
        assert payload["properties"]["type"]["const"] == message["name"]
    package = json.loads((ROOT / "clients" / "js" / "package.json").read_text())
    assert package["version"] == PROTOCOL_VERSION == doc["info"]["version"]


@pytest.mark.parametrize("direction", ["client", "server"])
def test_messages_are_keyed_by_direction(direction: str) -> None:
    doc = document()
    keys = [k for k in doc["components"]["messages"] if k.startswith(direction + ".")]
    expected = protocol.FRAME_TYPES if direction == "client" else outbound.OUTBOUND_TYPES
    assert sorted(k.split(".", 1)[1] for k in keys) == sorted(expected)
