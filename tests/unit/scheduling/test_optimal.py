"""The QP schedulers: the offline optimum against valley filling, online and ePoB against the
offline optimum, and solver failures as typed errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gridchain.market.scheduling.base import caps, valley_fill_level
from gridchain.market.scheduling.errors import InfeasibleProblemError, SchedulingError, SolverError
from gridchain.market.scheduling.model import CDRequest, Kind, Scenario
from gridchain.market.scheduling.optimal import Offline, Online, epob
from gridchain.market.scheduling.qp import Objective, build_qp, solve_qp
from gridchain.market.scheduling.verify import net_load_w, ramp_cost_w2

from .conftest import small


def _reference_level(base: np.ndarray, units: float) -> float:
    """Valley-filling level by bisection, independent of the library's exact walk."""
    lo, hi = float(base.min()), float(base.max()) + units
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.maximum(0.0, mid - base).sum() < units:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _full_window_scenario(energy_wh: int, count: int = 12) -> Scenario:
    """Half-hourly day of the real base load; every vehicle connected all day with a charger
    large enough that rates never bind, so valley filling is feasible."""
    day = small(1)
    requests = tuple(
        CDRequest(i, Kind.CHARGE, 0, day.n_intervals, energy_wh, 200_000) for i in range(count)
    )
    return day.with_requests(requests, name="valley")


def _relaxed_load(scenario: Scenario, rates: np.ndarray) -> np.ndarray:
    sign = np.asarray([1.0 if r.kind is Kind.CHARGE else -1.0 for r in scenario.requests])
    return np.asarray(np.asarray(scenario.base_load_w, dtype=np.float64) + sign @ rates)


@pytest.mark.parametrize("energy_wh", [5_000, 40_000, 120_000])
def test_offline_level_optimum_is_valley_filling(energy_wh: int) -> None:
    scenario = _full_window_scenario(energy_wh)
    result = Offline(Objective.LEVEL).solve(scenario)
    base = np.asarray(scenario.base_load_w, dtype=np.float64)
    level = _reference_level(base, float(sum(caps(scenario))))
    assert level == pytest.approx(valley_fill_level(base, float(sum(caps(scenario)))), abs=1e-6)
    expected = np.maximum(base, level)
    assert np.abs(_relaxed_load(scenario, result.relaxed_rates_w) - expected).max() < 1.0
    # Rounded to integer W, each interval moves by less than 1 W per request.
    rounded = np.asarray(
        net_load_w(scenario.base_load_w, scenario.requests, result.schedule.rates_w)
    )
    assert np.abs(rounded - expected).max() < len(scenario.requests)


def test_offline_ramp_optimum_is_valley_filling_when_the_fill_is_flat() -> None:
    # Enough energy to lift every interval above the evening peak: the filled load is flat,
    # which is also the only load with no ramp at all.
    scenario = _full_window_scenario(250_000)
    base = np.asarray(scenario.base_load_w, dtype=np.float64)
    level = _reference_level(base, float(sum(caps(scenario))))
    assert level > base.max()
    result = Offline(Objective.RAMP).solve(scenario)
    load = _relaxed_load(scenario, result.relaxed_rates_w)
    assert np.abs(load - level).max() < 1.0
    assert result.objective_w2 < 1.0


def test_ramp_and_level_optima_differ_in_general() -> None:
    """Valley filling is not the eq. 6.4 optimum when the fill is not flat (documented)."""
    scenario = _full_window_scenario(40_000)
    level = Offline(Objective.LEVEL).solve(scenario)
    ramp = Offline(Objective.RAMP).solve(scenario)
    level_ramp_cost = ramp_cost_w2(
        net_load_w(scenario.base_load_w, scenario.requests, level.schedule.rates_w)
    )
    assert ramp.objective_w2 < 0.99 * level_ramp_cost


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_no_scheduler_beats_the_offline_optimum(seed: int) -> None:
    from gridchain.market.scheduling.registry import make_scheduler

    scenario = small(seed)
    optimum = Offline().solve(scenario).objective_w2
    schedulers = [
        Online(),
        epob(1.0),
        epob(1.5),
        epob(2.39),
        *(make_scheduler(n) for n in ("uncontrolled", "conventional", "adbev", "offline")),
    ]
    for scheduler in schedulers:
        schedule = scheduler.schedule(scenario)
        cost = ramp_cost_w2(net_load_w(scenario.base_load_w, scenario.requests, schedule.rates_w))
        assert cost >= optimum * (1 - 1e-6), scheduler.name


def test_epob_with_c_one_is_the_online_schedule() -> None:
    scenario = small(6)
    assert epob(1.0).schedule(scenario).rates_w == Online().schedule(scenario).rates_w


def test_epob_moves_charging_earlier_than_online() -> None:
    """c > 1 runs ahead of the plan: the energy-weighted mean charging interval comes earlier."""
    scenario = small(7)
    charging = [i for i, r in enumerate(scenario.requests) if r.kind is Kind.CHARGE]

    def centre(rates: tuple[tuple[int, ...], ...]) -> float:
        moved = sum(k * rates[i][k] for i in charging for k in range(scenario.n_intervals))
        return moved / sum(sum(rates[i]) for i in charging)

    assert centre(epob(1.5).schedule(scenario).rates_w) < centre(
        Online().schedule(scenario).rates_w
    )


def test_online_on_a_day_known_in_advance_matches_offline() -> None:
    """If every vehicle arrives at the first interval, online knows everything offline knows,
    so its schedule is optimal (up to integer rounding)."""
    scenario = small(4)
    at_start = tuple(replace(r, arrival=0) for r in scenario.requests)
    day = scenario.with_requests(at_start)
    optimum = Offline().solve(day).objective_w2
    online = Online().schedule(day)
    cost = ramp_cost_w2(net_load_w(day.base_load_w, day.requests, online.rates_w))
    assert cost <= optimum * 1.001 + 1e6


def test_infeasible_transformer_limit_is_a_typed_error() -> None:
    scenario = small(1)
    limited = replace(scenario, transformer_limit_w=min(scenario.base_load_w) - 1)
    with pytest.raises(InfeasibleProblemError) as caught:
        Offline().solve(limited)
    assert "infeasible" in str(caught.value).lower()
    assert caught.value.status


def test_a_charge_request_that_cannot_finish_is_named() -> None:
    scenario = small(1)
    impossible = CDRequest(99, Kind.CHARGE, 10, 12, 10_000, 3_000)  # 10 kWh in 1 h at 3 kW
    with pytest.raises(InfeasibleProblemError, match="request 99"):
        Offline().solve(scenario.with_requests((*scenario.requests, impossible)))


def test_a_solver_that_stops_early_raises_rather_than_returning_a_schedule() -> None:
    scenario = small(1)
    problem = build_qp(
        base_load_w=scenario.base_load_w,
        start=0,
        requests=scenario.requests,
        residual_units=caps(scenario),
        objective=Objective.RAMP,
    )
    with pytest.raises(SolverError) as caught:
        solve_qp(problem, Objective.RAMP, max_iter=1)
    assert not isinstance(caught.value, InfeasibleProblemError)
    assert caught.value.status == "MaxIterations"


def test_epob_refuses_a_slow_down() -> None:
    with pytest.raises(SchedulingError):
        epob(0.5)
