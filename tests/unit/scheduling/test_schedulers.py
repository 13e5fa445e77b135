"""Every scheduler behind the one interface: valid, deadline-meeting, deterministic schedules."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gridchain.market.scheduling.adbev import AdBEV, _execute, _Order, _sorted_book
from gridchain.market.scheduling.base import caps, round_to_units
from gridchain.market.scheduling.errors import SchedulingError
from gridchain.market.scheduling.genetic import Genetic
from gridchain.market.scheduling.heuristics import Conventional, Uncontrolled
from gridchain.market.scheduling.model import CDRequest, Kind, Scenario
from gridchain.market.scheduling.registry import SCHEDULER_NAMES, make_scheduler
from gridchain.market.scheduling.scenarios import CH3, CH4, CH5, scaled
from gridchain.market.scheduling.verify import check_schedule, net_load_w, ramp_cost_w2

from .conftest import small

FAST = [name for name in SCHEDULER_NAMES if name != "ga"]


def _delivered(scenario: Scenario, rates: tuple[tuple[int, ...], ...]) -> list[int]:
    return [sum(row) for row in rates]


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_every_scheduler_meets_every_deadline(name: str, small_scenario: Scenario) -> None:
    scheduler = make_scheduler(name, seed=3)
    if isinstance(scheduler, Genetic):
        scheduler = replace(scheduler, generations=40)
    schedule = scheduler.schedule(small_scenario)
    check_schedule(
        small_scenario.requests, schedule.rates_w, interval_min=small_scenario.interval_min
    )
    delivered = _delivered(small_scenario, schedule.rates_w)
    for request, units, got in zip(
        small_scenario.requests, caps(small_scenario), delivered, strict=True
    ):
        if request.kind is Kind.CHARGE:
            assert got == units, (name, request)
        else:
            assert 0 <= got <= units, (name, request)


@pytest.mark.parametrize("params", [CH3, CH4, CH5], ids=["ch3", "ch4", "ch5"])
@pytest.mark.parametrize("name", FAST)
def test_schedulers_are_valid_on_every_chapter_preset(name: str, params: object) -> None:
    from gridchain.market.scheduling.scenarios import ScenarioParams, generate

    assert isinstance(params, ScenarioParams)
    scenario = generate(scaled(params, 15), 5)
    schedule = make_scheduler(name).schedule(scenario)
    check_schedule(scenario.requests, schedule.rates_w, interval_min=scenario.interval_min)


def test_uncontrolled_charges_at_full_rate_from_arrival_and_ignores_v2g() -> None:
    req = CDRequest(0, Kind.CHARGE, 2, 8, 1_000, 2_500)  # 6000 W-intervals at 10 min
    v2g = CDRequest(1, Kind.DISCHARGE, 0, 8, 1_000, 2_500)
    day = Scenario("t", 10, (1000,) * 10, (req, v2g))
    rates = Uncontrolled().schedule(day).rates_w
    assert rates[0] == (0, 0, 2500, 2500, 1000, 0, 0, 0, 0, 0)
    assert rates[1] == (0,) * 10


def test_conventional_charges_in_the_valley_and_discharges_at_the_peak() -> None:
    base = (500, 400, 100, 200, 900, 800, 300, 600)
    req = CDRequest(0, Kind.CHARGE, 0, 8, 100, 300)  # 600 W-intervals
    v2g = CDRequest(1, Kind.DISCHARGE, 0, 8, 50, 200)  # up to 300 W-intervals
    day = Scenario("t", 10, base, (req, v2g))
    rates = Conventional().schedule(day).rates_w
    assert rates[0] == (0, 0, 300, 300, 0, 0, 0, 0)
    assert rates[1] == (0, 0, 0, 0, 200, 100, 0, 0)


def test_ga_is_deterministic_per_seed_and_improves_on_uncontrolled() -> None:
    scenario = small(8)
    ga = Genetic(seed=1, generations=60, fitness="eq6_4")
    first, again = ga.schedule(scenario), ga.schedule(scenario)
    assert first == again

    def cost(rates: tuple[tuple[int, ...], ...]) -> int:
        return ramp_cost_w2(net_load_w(scenario.base_load_w, scenario.requests, rates))

    assert cost(first.rates_w) <= cost(Uncontrolled().schedule(scenario).rates_w)


def test_adbev_ranks_price_ten_times_more_than_time() -> None:
    """f = 10 Rank(price) + Rank(time): one price level is worth ten time ranks, so a slightly
    better price wins against an order up to nine ranks older and loses to one eleven older."""

    def book(older_by: int) -> list[_Order]:
        rich = _Order(0, True, price=20, time_rank=older_by, quantity=1000, iceberg=False)
        poor = _Order(1, True, price=19, time_rank=0, quantity=1000, iceberg=False)
        fill = [_Order(2 + k, True, 19, 1 + k, 1, False) for k in range(older_by - 1)]
        return _sorted_book([poor, rich, *fill], 10, 1, buy=True)

    assert book(9)[0].index == 0
    assert book(11)[0].index == 1


def test_adbev_icebergs_share_capacity_clip_by_clip() -> None:
    a = _Order(0, True, price=20, time_rank=0, quantity=12_000, iceberg=True)
    b = _Order(1, True, price=20, time_rank=1, quantity=12_000, iceberg=True)
    fills = [0, 0]
    left = _execute([a, b], 16_000, peak_w=4_000, a=10, b=1, buy=True, fills=fills)
    # Clips of 4 kW alternate: a, b, a, b.
    assert fills == [8_000, 8_000]
    assert left == 0


def test_adbev_keeps_every_request_valid_on_a_crowded_evening() -> None:
    requests = tuple(
        CDRequest(i, Kind.CHARGE if i % 4 else Kind.DISCHARGE, 0, 6, 4_000, 22_000)
        for i in range(12)
    )
    day = Scenario("crowd", 30, (90_000, 120_000, 150_000, 110_000, 80_000, 70_000), requests)
    schedule = AdBEV().schedule(day)
    check_schedule(day.requests, schedule.rates_w, interval_min=30)


def test_round_to_units_keeps_totals_and_bounds() -> None:
    values = np.array([0.4, 2.6, 2.6, 9.9, 0.0])
    out = round_to_units(values, upper=10, total=16)
    assert int(out.sum()) == 16
    assert out.min() >= 0
    assert out.max() <= 10
    assert list(round_to_units(values, upper=10, total=14)) == [0, 2, 2, 10, 0]


def test_unknown_scheduler_names_are_refused() -> None:
    with pytest.raises(SchedulingError):
        make_scheduler("fastest")
