"""The core's tests: the slow property tests run after the example-based ones.

Order only, nothing is skipped: a broken rule is reported first by the small test that names it, and
mutation testing (`make mutation`, which stops at a mutant's first failing test) spends seconds on a
property test only when no example-based test caught the change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def _is_slow_property(item: pytest.Item) -> bool:
    return item.path.is_relative_to(_HERE) and getattr(getattr(item, "obj", None), "is_hypothesis_test", False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_is_slow_property)  # stable: every other test keeps its place
