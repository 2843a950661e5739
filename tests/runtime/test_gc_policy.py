"""The garbage-collection policy of the long-running processes (runtime/gc_policy.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from runtime.gc_policy import GC_THRESHOLDS, GcPauses, freeze_startup


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_freeze_startup_puts_what_is_alive_out_of_reach_and_sets_the_thresholds(restore_gc: None) -> None:
    kept = [{"alive": i} for i in range(1000)]  # tracked containers, alive at "startup"
    frozen = freeze_startup()
    assert frozen == gc.get_freeze_count() and frozen >= 1000
    assert gc.get_threshold() == GC_THRESHOLDS
    assert not any(o is kept for o in gc.get_objects(generation=2))  # frozen objects are in no generation
    assert kept[0]["alive"] == 0


def test_freeze_without_collecting_still_freezes_and_sets_the_thresholds(restore_gc: None) -> None:
    kept = [{"alive": i} for i in range(1000)]
    assert freeze_startup(collect=False) >= 1000
    assert gc.get_threshold() == GC_THRESHOLDS
    assert kept[-1]["alive"] == 999


def test_frozen_objects_are_still_freed_by_reference_counting(restore_gc: None) -> None:
    import weakref

    class Thing:
        pass

    thing = Thing()
    ref = weakref.ref(thing)
    freeze_startup()
    del thing
    assert ref() is None  # only cycles wait for the collector; a plain object goes at once


def test_pauses_are_observed_by_generation_while_installed() -> None:
    registry = CollectorRegistry()
    pauses = GcPauses(registry)

    def count(generation: int) -> float:
        return registry.get_sample_value("wrencos_gc_pause_seconds_count", {"generation": str(generation)}) or 0.0

    pauses.install()
    pauses.install()  # once only
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.uninstall()
    assert count(0) == 1 and count(2) == 1
    assert (registry.get_sample_value("wrencos_gc_pause_seconds_sum", {"generation": "2"}) or 0) > 0
    gc.collect(0)  # uninstalled: not counted
    assert count(0) == 1
