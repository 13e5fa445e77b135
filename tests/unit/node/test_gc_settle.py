"""settle_heap: start-up's objects leave the collector's passes, later garbage is still freed.

Why (ADR 0051): a full collection walked every object a validator made at start-up (~90,000)
in the middle of a benchmark run; freezing them after start and collecting the young
generation less often removed those passes.  What must hold: cyclic garbage made after start
is still collected, and what start-up left as garbage is collected, not frozen.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gridchain.node.gc_settle import YOUNG_THRESHOLD, settle_heap


class Cell:
    """A container that can be part of a reference cycle and be weakly referenced."""

    def __init__(self) -> None:
        self.other: Cell | None = None


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def _cycle() -> weakref.ref[Cell]:
    a, b = Cell(), Cell()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_start_up_garbage_is_collected_before_the_freeze() -> None:
    left_over = _cycle()  # unreachable already, only a cycle keeps it
    frozen = settle_heap()
    assert left_over() is None
    assert frozen == gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD


def test_a_cycle_made_after_start_is_still_collected() -> None:
    settle_heap()
    later = _cycle()
    assert later() is not None  # only the cyclic collector can free it
    gc.collect()
    assert later() is None
