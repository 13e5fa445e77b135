"""Schedulers built on the convex QP: the offline optimum, the online scheduler and ePoB.

Offline: one QP over the whole day with every request known in advance (the source's "offline
optimal", the benchmark for the competitive ratio), rounded to integer W per request with the
energy of every request kept exact.

Online (source ch. 6.3.2 and problem (6)): at each decision interval t the scheduler knows only
the vehicles that have arrived; it solves the current-state problem for them (residual energy,
windows from t on, the realised load of t-1 as the start of the ramp) assuming nobody else will
come, applies the first interval, and moves on.  Without a new arrival the rest of the previous
plan is still optimal for the residual problem (nothing it did not know has happened), so the
scheduler re-solves only when a vehicle arrives; this is the source's event-driven relabelling
of time (6.4.1) and gives the same schedule as solving at every interval.

ePoB (Table 6-A): the online solution sped up by ``c`` and capped by the chargers,
``S = min(c * sum_i x_i1, sum_i U_i)`` (and likewise for discharge).  Table 6-A fixes only the
total; we give each vehicle its planned rate times ``c`` (within what it must and may take now)
and hand what the per-vehicle caps cut off to the vehicles that leave first.  This is the
"qOA" idea from speed scaling (run Optimal Available faster than it thinks it needs to, to hedge
against work that will arrive).  Because the applied rates then differ from the plan, ePoB with
``c > 1`` re-solves at every interval in which a vehicle is connected.  With ``c = 1`` the rule
applies the online plan itself, and the schedule is the online scheduler's, identically.

Measured on the source's standard scenario, any ``c > 1`` makes eq. 6.4 worse, and quickly: the
objective is anchored on the realised previous load, so each re-solved plan continues from the
load the speed-up has lifted, the factor compounds until the vehicles are full, and the load then
drops off a cliff (docs/scheduling.md).

Rounding keeps validity: every applied rate lies between what the request must take now to still
finish at full rate later and what it may take (its maximum rate, its remaining energy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridchain.market.scheduling.base import (
    FloatArray,
    caps,
    edf_order,
    round_to_units,
    to_schedule,
    zero_rates,
)
from gridchain.market.scheduling.errors import SchedulingError
from gridchain.market.scheduling.model import Kind, Scenario, Schedule
from gridchain.market.scheduling.qp import Objective, build_qp, solve_qp


@dataclass(frozen=True, slots=True)
class OfflineResult:
    """The rounded schedule and the continuous optimum (W^2) it was rounded from.

    ``objective_w2`` is a lower bound on the objective of every feasible schedule of the
    scenario, integer or not, which is what the never-better-than-offline checks compare with.
    """

    schedule: Schedule
    objective_w2: float
    relaxed_rates_w: FloatArray


@dataclass(frozen=True, slots=True)
class Offline:
    objective: Objective = Objective.RAMP
    name: str = "offline"

    def solve(self, scenario: Scenario) -> OfflineResult:
        residual = caps(scenario)
        problem = build_qp(
            base_load_w=scenario.base_load_w,
            start=0,
            requests=scenario.requests,
            residual_units=residual,
            objective=self.objective,
            load_limit_w=scenario.transformer_limit_w,
        )
        solution = solve_qp(problem, self.objective)
        relaxed = np.zeros((len(scenario.requests), scenario.n_intervals), dtype=np.float64)
        relaxed[problem.var_request, problem.var_interval] = solution.rates_w
        rates = zero_rates(scenario)
        for i, request in enumerate(scenario.requests):
            window = slice(request.arrival, request.departure)
            if request.kind is Kind.CHARGE:
                total = residual[i]
            else:
                total = min(residual[i], round(float(relaxed[i, window].sum())))
            rates[i, window] = round_to_units(relaxed[i, window], request.max_rate_w, total)
        return OfflineResult(to_schedule(self.name, rates), solution.objective_w2, relaxed)

    def schedule(self, scenario: Scenario) -> Schedule:
        return self.solve(scenario).schedule


def _bounds(scenario: Scenario, i: int, t: int, residual: int) -> tuple[int, int]:
    """What request i must take now (to finish at full rate later) and may take now."""
    r = scenario.requests[i]
    high = min(r.max_rate_w, residual)
    if r.kind is Kind.DISCHARGE:
        return 0, high
    low = max(0, residual - r.max_rate_w * (r.departure - t - 1))
    return low, high


@dataclass(frozen=True, slots=True)
class Online:
    """Online scheduler; ``speedup`` set turns it into ePoB (see the module docstring)."""

    objective: Objective = Objective.RAMP
    speedup: float | None = None
    name: str = "online"

    def schedule(self, scenario: Scenario) -> Schedule:
        reqs = scenario.requests
        horizon = scenario.n_intervals
        rates = zero_rates(scenario)
        residual = caps(scenario)
        base = np.asarray(scenario.base_load_w, dtype=np.float64)
        sign = np.asarray([1 if r.kind is Kind.CHARGE else -1 for r in reqs], dtype=np.int64)
        plan: dict[int, FloatArray] = {}  # request index -> planned rates from plan_start on
        plan_start = 0
        previous_load: float | None = None
        arrivals = {r.arrival for r in reqs}
        for t in range(horizon):
            live = [
                i
                for i in range(len(reqs))
                if reqs[i].arrival <= t < reqs[i].departure and residual[i] > 0
            ]
            if live:
                if self.speedup not in (None, 1.0) or t in arrivals or not plan:
                    plan = self._plan(scenario, live, residual, t, previous_load)
                    plan_start = t
                first = {i: float(plan[i][t - plan_start]) if i in plan else 0.0 for i in live}
                applied = self._apply(scenario, live, residual, t, first)
                for i, value in applied.items():
                    rates[i, t] = value
                    residual[i] -= value
            previous_load = float(base[t] + int(sign @ rates[:, t])) if len(reqs) else base[t]
        return to_schedule(self.name, rates)

    def first_interval(
        self, scenario: Scenario, residual_units: list[int], previous_load_w: int | None
    ) -> list[int]:
        """Rates (W magnitudes) for interval 0 only, every request being connected now.

        This is one step of :meth:`schedule` as a block proposer takes it: the chain knows the
        vehicles connected in the interval it decides, what each still needs, and the load it
        planned for the interval before; the scenario's intervals run from the decided one on.
        """
        live = [i for i, units in enumerate(residual_units) if units > 0]
        out = [0] * len(residual_units)
        if not live:
            return out
        previous = None if previous_load_w is None else float(previous_load_w)
        residual = list(residual_units)
        plan = self._plan(scenario, live, residual, 0, previous)
        first = {i: float(plan[i][0]) for i in live}
        for i, value in self._apply(scenario, live, residual, 0, first).items():
            out[i] = value
        return out

    def _plan(
        self,
        scenario: Scenario,
        live: list[int],
        residual: list[int],
        t: int,
        previous_load: float | None,
    ) -> dict[int, FloatArray]:
        reqs = [scenario.requests[i] for i in live]
        end = min(scenario.n_intervals, max(r.departure for r in reqs) + 1)
        problem = build_qp(
            base_load_w=scenario.base_load_w,
            start=t,
            end=end,
            requests=reqs,
            residual_units=[residual[i] for i in live],
            objective=self.objective,
            previous_load_w=previous_load if self.objective is Objective.RAMP else None,
            load_limit_w=scenario.transformer_limit_w,
        )
        solution = solve_qp(problem, self.objective, previous_load)
        planned = np.zeros((len(live), end - t), dtype=np.float64)
        planned[problem.var_request, problem.var_interval] = solution.rates_w
        return {i: planned[k] for k, i in enumerate(live)}

    def _apply(
        self,
        scenario: Scenario,
        live: list[int],
        residual: list[int],
        t: int,
        first: dict[int, float],
    ) -> dict[int, int]:
        bounds = {i: _bounds(scenario, i, t, residual[i]) for i in live}
        if self.speedup in (None, 1.0):
            # c = 1: S = sum x_i1 is the plan itself, so apply it exactly as online does.
            return {i: min(max(round(first[i]), bounds[i][0]), bounds[i][1]) for i in live}
        out: dict[int, int] = {}
        c = self.speedup
        for kind in (Kind.CHARGE, Kind.DISCHARGE):
            group = [i for i in live if scenario.requests[i].kind is kind]
            if not group:
                continue
            # S = min(c * sum x_i1, sum U_i), U_i here also limited by the energy left.
            total = min(round(c * sum(first[i] for i in group)), sum(bounds[i][1] for i in group))
            for i in group:
                low, high = bounds[i]
                out[i] = min(max(round(c * first[i]), low), high)
            # What per-vehicle caps cut off goes to the vehicles leaving soonest.
            left = total - sum(out[i] for i in group)
            for i in edf_order(scenario.requests, group):
                if left <= 0:
                    break
                extra = min(bounds[i][1] - out[i], left)
                out[i] += extra
                left -= extra
        return out


def epob(c: float, objective: Objective = Objective.RAMP) -> Online:
    """ePoB with competitive-ratio factor ``c`` (Table 6-A)."""
    if c < 1.0:
        raise SchedulingError("the speed-up factor c must be at least 1")
    return Online(objective=objective, speedup=c, name=f"epob(c={c:g})")
