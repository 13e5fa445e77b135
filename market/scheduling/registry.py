"""Every scheduler of the library by name: for the benchmarks and the tests, not for validators.

A validator runs only the schedulers genesis can name (``uncontrolled``, ``online``, ``epob``,
built by market/cd_planner.py); the research schedulers (GA, AdBEV, conventional, offline) are
imported here lazily, when asked for by name, so that importing this module costs nothing.
"""

from __future__ import annotations

from gridchain.market.scheduling.base import Scheduler
from gridchain.market.scheduling.errors import SchedulingError

#: The speed-up factor ePoB uses unless told otherwise; chosen from the bench's sweep of c
#: (docs/scheduling.md): on the source's standard scenario any c > 1 made the load less flat.
DEFAULT_EPOB_C = 1.0

SCHEDULER_NAMES = ("uncontrolled", "conventional", "ga", "adbev", "offline", "online", "epob")


def make_scheduler(name: str, *, seed: int = 0, c: float = DEFAULT_EPOB_C) -> Scheduler:
    """A scheduler by its name in :data:`SCHEDULER_NAMES` (``seed`` feeds the GA only)."""
    # Each import is local so that naming one scheduler loads only its module.
    if name == "uncontrolled":
        from gridchain.market.scheduling.heuristics import Uncontrolled  # noqa: PLC0415

        return Uncontrolled()
    if name == "conventional":
        from gridchain.market.scheduling.heuristics import Conventional  # noqa: PLC0415

        return Conventional()
    if name == "ga":
        from gridchain.market.scheduling.genetic import Genetic  # noqa: PLC0415

        return Genetic(seed=seed)
    if name == "adbev":
        from gridchain.market.scheduling.adbev import AdBEV  # noqa: PLC0415

        return AdBEV()
    if name in ("offline", "online", "epob"):
        from gridchain.market.scheduling.optimal import Offline, Online, epob  # noqa: PLC0415

        if name == "offline":
            return Offline()
        return Online() if name == "online" else epob(c)
    raise SchedulingError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULER_NAMES)}")
