"""The one interface every scheduler implements, and the helpers they share.

A scheduler takes a :class:`Scenario` and returns an integer :class:`Schedule`; nothing else
crosses the interface, so the benchmark, the tests and a block proposer treat them alike.
Schedulers may compute with floats, but the schedule they return has already been rounded to
integer W in a way that keeps every request feasible (exact energy for charge requests, never
more than offered for discharge requests), so :func:`verify.check_schedule` accepts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gridchain.market.scheduling.model import CDRequest, Kind, Scenario, Schedule
from gridchain.market.scheduling.verify import unit_cap

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class Scheduler(Protocol):
    """What the benchmark and the proposer call."""

    @property
    def name(self) -> str: ...

    def schedule(self, scenario: Scenario) -> Schedule: ...


def zero_rates(scenario: Scenario) -> IntArray:
    return np.zeros((len(scenario.requests), scenario.n_intervals), dtype=np.int64)


def to_schedule(name: str, rates: IntArray) -> Schedule:
    """Freeze a rate matrix into the integer form a block carries."""
    return Schedule(algorithm=name, rates_w=tuple(tuple(int(v) for v in row) for row in rates))


def caps(scenario: Scenario) -> list[int]:
    """Per request, the W-intervals it must receive (charge) or may give (discharge)."""
    return [unit_cap(r, scenario.interval_min) for r in scenario.requests]


def net_load(scenario: Scenario, rates: IntArray | FloatArray) -> FloatArray:
    """Community load in W per interval for a rate matrix (float, for metrics and plots)."""
    sign = np.asarray(
        [1.0 if r.kind is Kind.CHARGE else -1.0 for r in scenario.requests], dtype=np.float64
    )
    base = np.asarray(scenario.base_load_w, dtype=np.float64)
    if len(scenario.requests) == 0:
        return base
    return base + sign @ np.asarray(rates, dtype=np.float64)


def fill_in_order(
    row: IntArray, intervals: Sequence[int] | IntArray, max_rate_w: int, units: int
) -> None:
    """Give ``max_rate_w`` to the intervals in the given order until ``units`` are placed."""
    left = units
    for k in intervals:
        if left <= 0:
            break
        rate = min(max_rate_w, left)
        row[int(k)] = rate
        left -= rate


def round_to_units(values: FloatArray, upper: int, total: int) -> IntArray:
    """Round non-negative rates to integers in [0, upper] that sum exactly to ``total``.

    Floor everything, then hand out the missing units one W at a time to the entries with the
    largest fractional parts (ties to the earlier interval), so the result is deterministic and
    as close to the input as integer rounding allows.  ``total`` must be reachable.
    """
    clipped = np.clip(values, 0.0, float(upper))
    out = np.floor(clipped).astype(np.int64)
    missing = total - int(out.sum())
    if missing > 0:
        frac = clipped - out
        order = np.lexsort((np.arange(out.size), -frac))
        while missing > 0:
            progressed = False
            for k in order:
                if out[k] < upper:
                    out[k] += 1
                    missing -= 1
                    progressed = True
                    if missing == 0:
                        break
            if not progressed:
                raise ValueError("rounding target exceeds what the rates can hold")
    elif missing < 0:
        frac = clipped - out
        order = np.lexsort((np.arange(out.size), frac))
        while missing < 0:
            for k in order:
                if out[k] > 0:
                    out[k] -= 1
                    missing += 1
                    if missing == 0:
                        break
    return out


def valley_fill_level(base_w: FloatArray, energy_units: float) -> float:
    """The level lam with sum(max(0, lam - base)) == energy_units: classical valley filling.

    Exact, by walking the sorted base load; used as AdBEV's day-ahead target and by tests as
    the reference the offline optimum must equal when nothing else binds.
    """
    b = np.sort(np.asarray(base_w, dtype=np.float64))
    if energy_units <= 0:
        return float(b[0])
    prefix = 0.0
    for k in range(b.size):
        # Raising the level from b[k] to b[k+1] fills (k+1) intervals.
        nxt = b[k + 1] if k + 1 < b.size else np.inf
        room = (k + 1) * (nxt - b[k])
        if prefix + room >= energy_units:
            return float(b[k] + (energy_units - prefix) / (k + 1))
        prefix += room
    raise AssertionError("unreachable: the last step has infinite room")


def peak_shave_level(base_w: FloatArray, energy_units: float) -> float:
    """The level mu with sum(max(0, base - mu)) == energy_units (discharge shaving the peaks)."""
    return -valley_fill_level(-np.asarray(base_w, dtype=np.float64), energy_units)


def edf_order(requests: Sequence[CDRequest], indices: Sequence[int]) -> list[int]:
    """Earliest departure first, ties by request id: the order deadlines are honoured in."""
    return sorted(indices, key=lambda i: (requests[i].departure, requests[i].request_id))
