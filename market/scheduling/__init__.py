"""EV charge/discharge (C&D) scheduling: metrics, scenarios, schedulers and their verification.

This is the scheduling that PoB and ePoB are built on (source seed 001, chapters 3-6), as a pure
library: no I/O, no clock, no global randomness.  The layers:

- :mod:`.model` - requests, scenarios and integer schedules (the form a block carries);
- :mod:`.verify` - integer-only checks and the benefit value validators recompute;
- :mod:`.metrics` - the four power fluctuation levels (eqs. 3.11, 4.4, 5.7, 6.4);
- :mod:`.loadprofiles`, :mod:`.scenarios` - embedded load data and seeded scenarios;
- :mod:`.heuristics`, :mod:`.genetic`, :mod:`.adbev`, :mod:`.optimal` - the schedulers, all
  behind :class:`.base.Scheduler`; :mod:`.qp` is the convex problem the optimal ones solve.

:func:`make_scheduler` builds any of them by name, which is how genesis names the proposer's.
"""

from __future__ import annotations

from gridchain.market.scheduling.adbev import AdBEV
from gridchain.market.scheduling.base import Scheduler
from gridchain.market.scheduling.errors import (
    DeadlineUnreachableError,
    EnergyExceededError,
    InfeasibleProblemError,
    NegativeRateError,
    RateAboveMaxError,
    RateOutsideWindowError,
    ScenarioError,
    ScheduleShapeError,
    ScheduleViolationError,
    SchedulingError,
    SolverError,
)
from gridchain.market.scheduling.genetic import Genetic
from gridchain.market.scheduling.heuristics import Conventional, Uncontrolled
from gridchain.market.scheduling.model import CDRequest, Kind, Scenario, Schedule
from gridchain.market.scheduling.optimal import Offline, Online, epob
from gridchain.market.scheduling.qp import Objective
from gridchain.market.scheduling.verify import benefit, check_schedule, net_load_w, ramp_cost_w2

#: The speed-up factor ePoB uses unless told otherwise; chosen from the bench's sweep of c
#: (docs/scheduling.md): on the source's standard scenario any c > 1 made the load less flat.
DEFAULT_EPOB_C = 1.0

SCHEDULER_NAMES = ("uncontrolled", "conventional", "ga", "adbev", "offline", "online", "epob")


def make_scheduler(name: str, *, seed: int = 0, c: float = DEFAULT_EPOB_C) -> Scheduler:
    """A scheduler by its name in :data:`SCHEDULER_NAMES` (``seed`` feeds the GA only)."""
    if name == "uncontrolled":
        return Uncontrolled()
    if name == "conventional":
        return Conventional()
    if name == "ga":
        return Genetic(seed=seed)
    if name == "adbev":
        return AdBEV()
    if name == "offline":
        return Offline()
    if name == "online":
        return Online()
    if name == "epob":
        return epob(c)
    raise SchedulingError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULER_NAMES)}")


__all__ = [
    "DEFAULT_EPOB_C",
    "SCHEDULER_NAMES",
    "AdBEV",
    "CDRequest",
    "Conventional",
    "DeadlineUnreachableError",
    "EnergyExceededError",
    "Genetic",
    "InfeasibleProblemError",
    "Kind",
    "NegativeRateError",
    "Objective",
    "Offline",
    "Online",
    "RateAboveMaxError",
    "RateOutsideWindowError",
    "Scenario",
    "ScenarioError",
    "Schedule",
    "ScheduleShapeError",
    "ScheduleViolationError",
    "Scheduler",
    "SchedulingError",
    "SolverError",
    "Uncontrolled",
    "benefit",
    "check_schedule",
    "epob",
    "make_scheduler",
    "net_load_w",
    "ramp_cost_w2",
]
