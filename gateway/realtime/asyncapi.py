"""The WebSocket protocol as an AsyncAPI 3 document, generated from the frame models.

One source of truth: the inbound frames are the parser's own models
(`gateway/realtime/protocol.py`), the outbound ones the models the real
frames are checked against (`gateway/realtime/outbound.py`). The gateway
serves the document at `/asyncapi.json`; the JS client's types are generated
from it (`clients/js/scripts/gen_types.py`). `PROTOCOL_VERSION` is the
document's `info.version` and the JS package's version: change its major
number when a change would break an app.

The document describes the gateway (AsyncAPI 3's point of view): it
*receives* what apps send and *sends* what apps receive, on one channel.
"""

from __future__ import annotations

import inspect
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.realtime import outbound, protocol

PROTOCOL_VERSION = "2.0.0"
CHANNEL = "live"
_REF = "#/components/schemas/{model}"

_DESCRIPTION = """\
The apps' realtime protocol: one JSON object per text frame, each with a `type`.

Old apps (protocol 1) get every stream event as its own frame. Apps that send `"protocol": 2` on
`register` or `join_stream` get a stream's events in `batch` frames, an `ack` for each chat message
or like that carries a `clientMsgId` once it is stored (a resend with the same id counts once), and
may send `"resume": {"seq", "epoch"}` to get exactly the events they missed (`resumed`) on any
gateway, or `resume_failed` and a fresh snapshot.

Close codes: 1012 the gateway is restarting or draining (reconnect, to any gateway); 1013 try again
later (this connection fell behind, or too many connections from one address); 1008 no `register`
in time; 1009 a frame too big; 1001 idle without watching a stream.
"""


def _first_line(model: type[BaseModel]) -> str:
    doc = inspect.cleandoc(model.__dict__.get("__doc__") or "")  # its own, not pydantic's
    return " ".join(doc.split("\n\n")[0].split())


def _type_of(model: type[BaseModel]) -> str:
    return str(get_args(model.model_fields["type"].annotation)[0])


def _fix_discriminators(node: Any) -> None:
    """Pydantic writes OpenAPI's `discriminator` object; AsyncAPI's Schema Object takes a property name."""
    if isinstance(node, dict):
        d = node.get("discriminator")
        if isinstance(d, dict):
            node["discriminator"] = d["propertyName"]
            node.pop("mapping", None)
        for value in node.values():
            _fix_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _fix_discriminators(value)


def inbound_models() -> list[type[BaseModel]]:
    return list(protocol.FRAME_TYPES.values())


def outbound_models() -> list[type[BaseModel]]:
    return list(outbound.OUTBOUND_TYPES.values())


def document(server_host: str = "localhost:3000") -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the WebSocket protocol (plain JSON data)."""
    models = inbound_models() + outbound_models()
    refs, definitions = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    schemas: dict[str, Any] = definitions.get("$defs", {})
    _fix_discriminators(schemas)

    messages: dict[str, Any] = {}
    components: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for direction, action, group in (("client", "receive", inbound_models()), ("server", "send", outbound_models())):
        for model in group:
            kind = _type_of(model)
            key = f"{direction}.{kind}"
            payload_ref = refs[(model, "validation")]["$ref"]
            components[key] = {
                "name": kind,
                "title": f"{kind} ({'app to gateway' if direction == 'client' else 'gateway to app'})",
                "summary": _first_line(model) or kind,
                "contentType": "application/json",
                "payload": {"$ref": payload_ref},
            }
            messages[key] = {"$ref": f"#/components/messages/{key}"}
            operations[f"{action}.{kind}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{CHANNEL}"},
                "messages": [{"$ref": f"#/channels/{CHANNEL}/messages/{key}"}],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "WrenCOS Live realtime protocol",
            "version": PROTOCOL_VERSION,
            "description": _DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "gateway": {
                "host": server_host,
                "protocol": "ws",
                "pathname": "/ws",
                "description": "any gateway (also at `/`, what old apps open)",
            }
        },
        "channels": {
            CHANNEL: {
                "address": "/ws",
                "title": "A connection to a gateway",
                "messages": messages,
            }
        },
        "operations": operations,
        "components": {"schemas": schemas, "messages": components},
    }


def frame_types(doc: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The frame types a document names: (what the gateway receives, what it sends)."""
    received: set[str] = set()
    sent: set[str] = set()
    for op in doc["operations"].values():
        for ref in op["messages"]:
            key = ref["$ref"].rsplit("/", 1)[1]
            name = doc["components"]["messages"][key]["name"]
            (received if op["action"] == "receive" else sent).add(name)
    return received, sent
