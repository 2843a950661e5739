"""Boundaries that import-linter cannot see, checked on the source itself.

* Every Ray call to an actor (`.remote(...)`) is made by its client (`actors/stream_client.py`,
  `actors/registry_client.py`) or, for creating one, its lifecycle module: one policy for timeouts,
  retries and errors.
* Nothing on the gateway's or the actors' paths blocks its event loop with `time.sleep` or waits on
  `ray.get`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_PACKAGES = ("runtime", "core", "persistence", "actors", "gateway", "wrencos", "bench")
RAY_CALLERS = {
    "actors/stream_client.py",
    "actors/registry_client.py",
    "actors/stream_lifecycle.py",
    "actors/registry_lifecycle.py",
    "bench/idle_actor.py",  # its bare Ray actor (Ray's floor, for comparison) is not one of ours: no client
}
EVENT_LOOP_PACKAGES = ("actors", "gateway")


def sources(*packages: str) -> Iterator[tuple[str, ast.Module]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path))


def calls(tree: ast.Module) -> Iterator[ast.Call]:
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def attribute_calls(tree: ast.Module, attribute: str) -> list[int]:
    return [c.lineno for c in calls(tree) if isinstance(c.func, ast.Attribute) and c.func.attr == attribute]


def dotted_calls(tree: ast.Module, owner: str, name: str) -> list[int]:
    return [
        c.lineno
        for c in calls(tree)
        if isinstance(c.func, ast.Attribute)
        and c.func.attr == name
        and isinstance(c.func.value, ast.Name)
        and c.func.value.id == owner
    ]


def test_the_scan_sees_what_it_looks_for() -> None:
    tree = ast.parse("import ray, time\nray.get(actor.info.remote())\ntime.sleep(1)\n")
    assert attribute_calls(tree, "remote") == [2]
    assert dotted_calls(tree, "ray", "get") == [2]
    assert dotted_calls(tree, "time", "sleep") == [3]


def test_only_the_actor_clients_call_actors() -> None:
    found = {
        f"{path}:{line}"
        for path, tree in sources(*SERVER_PACKAGES)
        if path not in RAY_CALLERS
        for line in attribute_calls(tree, "remote")
    }
    assert found == set(), "call the actor through StreamClient or RegistryClient (actors/call_policy.py)"


def test_nothing_on_an_event_loop_sleeps_or_blocks_on_ray() -> None:
    found = {
        f"{path}:{line}"
        for path, tree in sources(*EVENT_LOOP_PACKAGES)
        for line in dotted_calls(tree, "time", "sleep") + dotted_calls(tree, "ray", "get")
    }
    assert found == set(), "await asyncio.sleep or the client's async call instead"
