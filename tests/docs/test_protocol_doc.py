"""docs/protocol.md cannot drift from the code: every frame type the gateway accepts
(`gateway/realtime/protocol.py`) or sends (`gateway/realtime/outbound.py`), every field of those
frames and of the shapes inside them, and every error `code` the WebSocket path can answer has its
place on the page; and the page names no frame type that does not exist.

The error codes are collected from the source of the code on the WebSocket's path (below), by
what the code does with a string, so a new code needs no list kept by hand:
  * `code="..."` passed to any call (`error_frame(..., code=...)`), or a `code` parameter's default;
  * the second argument of `ProtocolError(...)`, `Result.rejected(...)`, `self.error(...)`, the
    first of `ServiceError(...)`;
  * `{"code": "..."}` in a dict, `x.pop("code") or "..."`;
  * `code = "..."` (a class's code, a local variable), either side of `a if c else b`;
  * a name bound to a string at the top level of one of those modules stands for that string
    (`NOT_FOUND`, imported from `gateway/services/errors.py`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from gateway.realtime import outbound, protocol
from tests.docs.markdown import ROOT, code_spans, headings, section, table_rows

DOC = ROOT / "docs" / "protocol.md"

# The code on the WebSocket's path: what can put a `code` into an `error` frame.
WEBSOCKET_PATH = [
    "core",
    "actors",
    "gateway/app.py",
    "gateway/realtime",
    "gateway/services",
    "gateway/streams",
    "gateway/transport",
]

# A code the code uses that apps never see, with the code they see instead (and why).
SEEN_AS = {
    "invalid": "invalid_frame",  # a service's "invalid in itself": `WsSession.refused` answers it as a bad frame
}

_CALLS_WITH_CODE_SECOND = {"ProtocolError", "rejected", "error"}
_CALLS_WITH_CODE_FIRST = {"ServiceError"}


def _sources() -> Iterator[Path]:
    for entry in WEBSOCKET_PATH:
        path = ROOT / entry
        yield from [path] if path.is_file() else sorted(path.rglob("*.py"))


def _module_strings(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = node.value.value
    return names


def _strings(node: ast.AST | None, names: dict[str, str]) -> Iterator[str]:
    """The strings an expression can be: a constant, a module-level name, either branch of an
    `if`-expression, any operand of `or`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Name) and node.id in names:
        yield names[node.id]
    elif isinstance(node, ast.IfExp):
        yield from _strings(node.body, names)
        yield from _strings(node.orelse, names)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from _strings(value, names)


def _reads_code(node: ast.AST) -> bool:
    """`x.pop("code", ...)` or `x.get("code", ...)`."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("pop", "get")
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value == "code"
    )


def codes_in(source: str, imported: dict[str, str] | None = None) -> set[str]:
    """The error codes a module's source can send (see the module docstring); `imported`: the
    module-level strings of the other modules, which it may have imported."""
    tree = ast.parse(source)
    names = {**(imported or {}), **_module_strings(tree)}
    found: set[str] = set()
    for node in ast.walk(tree):
        exprs: list[ast.AST | None] = []
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            exprs += [k.value for k in node.keywords if k.arg == "code"]
            if called in _CALLS_WITH_CODE_SECOND and len(node.args) >= 2:
                exprs.append(node.args[1])
            if called in _CALLS_WITH_CODE_FIRST and node.args:
                exprs.append(node.args[0])
        elif isinstance(node, ast.Dict):
            exprs += [v for k, v in zip(node.keys, node.values, strict=True) if set(_strings(k, {})) == {"code"}]
        elif isinstance(node, ast.BoolOp) and any(_reads_code(v) for v in node.values):
            exprs += [v for v in node.values if not _reads_code(v)]
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == "code" for t in node.targets):
                exprs.append(node.value)
        elif isinstance(node, ast.AnnAssign):
            if isinstance(node.target, ast.Name) and node.target.id == "code":
                exprs.append(node.value)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.args + node.args.kwonlyargs
            defaults: list[ast.expr | None] = [None] * (len(node.args.args) - len(node.args.defaults))
            defaults += [*node.args.defaults, *node.args.kw_defaults]
            exprs += [d for a, d in zip(args, defaults, strict=True) if a.arg == "code"]
        for expr in exprs:
            found.update(_strings(expr, names))
    return found


def codes_sent() -> set[str]:
    sources = [path.read_text() for path in _sources()]
    everywhere: dict[str, str] = {}
    for source in sources:
        everywhere.update(_module_strings(ast.parse(source)))
    found: set[str] = set()
    for source in sources:
        found |= codes_in(source, everywhere)
    return {SEEN_AS.get(code, code) for code in found}


def _type_of(model: type[BaseModel]) -> str:
    return str(get_args(model.model_fields["type"].annotation)[0])


def _wire_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()} - {"type"}


def _frame_sections(text: str) -> dict[str, str]:
    """Each frame's own section (a heading that is just `` `type` ``) under `text`."""
    sections = {}
    for _, title in headings(text):
        m = re.fullmatch(r"`([a-z_]+)`", title)
        if m:
            sections[m.group(1)] = section(text, title)
    return sections


def _doc() -> str:
    return DOC.read_text()


def test_every_frame_an_app_may_send_is_documented_with_its_fields() -> None:
    documented = _frame_sections(section(_doc(), "Frames an app sends"))
    assert set(documented) == set(protocol.FRAME_TYPES), (
        f"missing: {sorted(set(protocol.FRAME_TYPES) - set(documented))}; "
        f"not in the code: {sorted(set(documented) - set(protocol.FRAME_TYPES))}"
    )
    for kind, model in protocol.FRAME_TYPES.items():
        missing = _wire_names(model) - code_spans(documented[kind])
        assert not missing, f"docs/protocol.md, `{kind}`: fields not described: {sorted(missing)}"


def test_every_frame_a_gateway_sends_is_documented_with_its_fields() -> None:
    doc = _doc()
    documented = _frame_sections(section(doc, "Frames a gateway sends"))
    assert set(documented) == set(outbound.OUTBOUND_TYPES), (
        f"missing: {sorted(set(outbound.OUTBOUND_TYPES) - set(documented))}; "
        f"not in the code: {sorted(set(documented) - set(outbound.OUTBOUND_TYPES))}"
    )
    # A stream event's envelope (`streamId`, `seq`, `epoch`) is described once, for all of them.
    envelope = _wire_names(outbound._Envelope)
    for kind, model in outbound.OUTBOUND_TYPES.items():
        expected = _wire_names(model) - (envelope if kind in outbound.STREAM_EVENT_TYPES else set())
        missing = expected - code_spans(documented[kind])
        assert not missing, f"docs/protocol.md, `{kind}`: fields not described: {sorted(missing)}"


def _nested_models(models: Iterable[type[BaseModel]]) -> set[type[BaseModel]]:
    """The models that frames hold (a stream's data, a chat entry, a pinned product...), not frames."""
    found: set[type[BaseModel]] = set()

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if "type" not in annotation.model_fields and annotation not in found:
                found.add(annotation)
                for field in annotation.model_fields.values():
                    visit(field.annotation)
            return
        for arg in get_args(annotation):
            visit(arg)

    for model in models:
        for field in model.model_fields.values():
            visit(field.annotation)
    return found


def test_every_shape_inside_a_frame_is_documented_with_its_fields() -> None:
    shapes = code_spans(section(_doc(), "Shapes inside frames"))
    nested = _nested_models([*protocol.FRAME_TYPES.values(), *outbound.OUTBOUND_TYPES.values()])
    assert {m.__name__ for m in nested} >= {"StreamData", "ChatEntry", "PinnedProduct", "FlashSale", "Resume"}
    for model in nested:
        missing = _wire_names(model) - shapes
        assert not missing, f"docs/protocol.md, Shapes inside frames: {model.__name__} fields not described: {missing}"


def _documented_codes() -> set[str]:
    rows = table_rows(section(_doc(), "Error codes"))
    return {m.group(1) for row in rows if (m := re.fullmatch(r"`([a-z_]+)`", row[0]))}


def test_every_error_code_is_documented() -> None:
    sent = codes_sent()
    documented = _documented_codes()
    assert not sent - documented, f"error codes missing from docs/protocol.md: {sorted(sent - documented)}"
    unknown = documented - sent
    assert not unknown, f"docs/protocol.md documents codes the code never sends: {sorted(unknown)}"


def test_the_collector_finds_codes_however_the_code_writes_them() -> None:
    source = """
NOT_HERE = "named"
def error(message, code="default_param"): ...
def f(session, data, e):
    raise ProtocolError("m", "second_arg")
    Result.rejected("m", "rejected_arg", retryAfter=1)
    session.error("m", "error_arg")
    ServiceError(NOT_HERE, "m")
    error_frame("m", code="keyword")
    send({"type": "error", "code": "in_a_dict"})
    code = "left" if e else "right"
    return data.pop("code", None) or "fallback"
class Refusal(Exception):
    code = "class_code"
"""
    assert codes_in(source) == {
        "named",
        "default_param",
        "second_arg",
        "rejected_arg",
        "error_arg",
        "keyword",
        "in_a_dict",
        "left",
        "right",
        "fallback",
        "class_code",
    }


def test_the_codes_the_websocket_is_known_to_send_are_collected() -> None:
    """A collector that found nothing would pass the test above: it finds the codes we know of."""
    assert codes_sent() >= {
        "invalid_frame",  # ProtocolError's default
        "unknown_type",
        "rate_limited",
        "slow_mode",  # a stream rule, in core/
        "busy",  # the relay's outbox and ActorRefused's class attribute
        "not_live",  # a service constant
        "rejected",  # the session's fallback
        "too_many_connections",  # gateway/app.py
    }
