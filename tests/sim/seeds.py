"""Which seeds a simulator test run covers: the same window for every engine's simulator.

At least 1,000 seeds per run, in chunks of 25 so pytest-xdist spreads them over workers.
GRIDCHAIN_SIM_SEEDS raises the count (a nightly run can try 100,000) and
GRIDCHAIN_SIM_FIRST_SEED moves the window, so new histories get explored without ever losing the
ones CI checks.
"""

from __future__ import annotations

import os

SEEDS = max(1_000, int(os.environ.get("GRIDCHAIN_SIM_SEEDS", "1000")))
FIRST_SEED = int(os.environ.get("GRIDCHAIN_SIM_FIRST_SEED", "0"))
CHUNK = 25
CHUNKS = (SEEDS + CHUNK - 1) // CHUNK


def chunk_seeds(chunk: int) -> range:
    """The seeds of one parametrised chunk."""
    first = FIRST_SEED + chunk * CHUNK
    return range(first, min(FIRST_SEED + SEEDS, first + CHUNK))


def all_seeds() -> range:
    return range(FIRST_SEED, FIRST_SEED + SEEDS)
