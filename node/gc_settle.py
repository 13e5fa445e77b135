"""Start-up's objects kept out of the cyclic garbage collector's passes (ADR 0051).

Why: a started validator holds about 90,000 container objects that live as long as the
process (modules, classes, functions, the pydantic models of the API, the genesis).  CPython's
full collection walks every tracked object; in ``bench consensus`` one full pass took 130-270
ms of a validator's time in the middle of the run (the transactions it admitted had grown the
heap enough to trigger it), against about 700 ms of work for the whole run.  ``gc.freeze`` after
start moves what is alive then into a permanent generation that no pass walks: the passes that
remain look only at objects made later (transactions, blocks, messages), which they collect as
before.  Garbage that start-up left behind is collected first.  The cost: an object alive at
start that later becomes part of an unreachable cycle stays in memory (reference counting still
frees everything else); start-up objects are the process's own code and configuration.

The youngest generation is collected every ``YOUNG_THRESHOLD`` allocations instead of 700: a
validator allocates a few dozen containers per transaction it admits, nearly all freed by
reference counting, and each young pass promoted the transactions waiting in the mempool one
generation further, to be walked again by the middle and full passes (measured in one
3,000-transfer run, per validator after start: 70-80 young, 6-7 middle and up to one full pass,
60-370 ms, against 4-5 young passes and 5-35 ms with this threshold).  Cyclic garbage waits a
little longer for its pass; nothing else changes.
"""

from __future__ import annotations

import gc
from typing import Final

#: Allocations (minus deallocations) of tracked objects between two young collections.
YOUNG_THRESHOLD: Final = 10_000


def settle_heap() -> int:
    """Collect start-up's garbage, freeze what is left and collect the young generation less
    often; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return gc.get_freeze_count()
