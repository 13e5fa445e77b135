"""The helpers of ``gridchain bench cdday``: the day on block time, the realised load, PFL."""

from __future__ import annotations

from typing import Any

import pytest

from gridchain.bench import cdday, cdday_loop
from gridchain.bench.cdday import (
    DAY_MINUTES,
    LIMIT_PRICE_MC_PER_KWH,
    MINUTE_MS,
    DayPlan,
    Window,
    chain_request,
    decision_leads,
    energy_summary,
    library_rows,
    library_scenario,
    missed_intervals,
    plan_day,
    realised_load,
    schedulable,
    submit_time_ms,
)
from gridchain.bench.cluster import bench_bundle
from gridchain.market.base_load import base_load_at
from gridchain.market.cd_requests import IntervalClock
from gridchain.market.scheduling.metrics import pfl_eq_6_4
from gridchain.market.scheduling.model import CDRequest, Kind
from gridchain.market.scheduling.verify import unit_cap
from gridchain.protocol.tx import CDKind, Device

NOW_MS = 1_795_240_803_292  # 2026-11-21, some time in the evening (UTC)


@pytest.mark.parametrize(
    ("start_minute", "interval_ms", "minutes", "lead_ms"),
    [
        (360, 1000, 10, 20_000),
        (360, 300, 120, 5_000),
        (0, 250, 10, 1_000),
        (1439, 700, 30, 60_000),
        ((NOW_MS // MINUTE_MS) % DAY_MINUTES, 1000, 10, 0),
    ],
)
def test_the_day_starts_soon_at_the_scenarios_minute_of_day(
    start_minute: int, interval_ms: int, minutes: int, lead_ms: int
) -> None:
    plan = plan_day(NOW_MS, start_minute, interval_ms, minutes, lead_ms)
    per_day = DAY_MINUTES // minutes
    assert plan.genesis_time_ms <= NOW_MS  # block times are the validators' clocks
    assert (plan.genesis_time_ms // MINUTE_MS) % DAY_MINUTES == start_minute
    assert (plan.first_interval * minutes) % DAY_MINUTES == 0
    start = plan.start_ms(0)
    assert start >= NOW_MS + lead_ms
    # never more than one simulated day of block time later than needed
    assert start - (NOW_MS + lead_ms) < per_day * interval_ms
    assert plan.start_ms(3) - plan.start_ms(2) == interval_ms
    assert plan.chain_interval(5) == plan.first_interval + 5


def test_the_chain_sees_the_base_load_of_the_scenarios_clock_times() -> None:
    plan = plan_day(NOW_MS, 360, 1000, 10, 20_000)
    common: dict[str, Any] = {
        "engine": "solo",
        "validators": 1,
        "participants": 1,
        "schedule_interval_ms": 1000,
        "schedule_interval_minutes": 10,
        "base_load_households": 200,
        "base_load_month": 1,
    }
    live = bench_bundle("t", genesis_time_ms=plan.genesis_time_ms, **common).genesis
    at_six = bench_bundle("t", genesis_time_ms=360 * MINUTE_MS, **common).genesis
    for a in (0, 1, 37, 143):
        assert base_load_at(live, plan.chain_interval(a)) == base_load_at(at_six, a)


def test_a_request_gets_the_scenarios_window_on_chain() -> None:
    plan = plan_day(NOW_MS, 360, 1000, 10, 20_000)
    request = CDRequest(7, Kind.CHARGE, arrival=12, departure=40, energy_wh=9_000, max_rate_w=7000)
    tx = chain_request(plan, request, "peer-h-ev")
    clock = IntervalClock(plan.genesis_time_ms, 1000, 10)
    assert tx.kind == int(CDKind.CHARGE)
    assert tx.device == int(Device.EV)
    assert clock.first_starting_at(tx.arrival_ms) == plan.chain_interval(12)
    assert clock.interval_at(tx.departure_ms) == plan.chain_interval(40)
    assert clock.units(CDKind.CHARGE, tx.energy_wh) == unit_cap(request, 10)
    assert tx.meter_id == "peer-h-ev"
    assert tx.limit_price_mc_per_kwh == LIMIT_PRICE_MC_PER_KWH
    sent = submit_time_ms(plan, request, 2.0)
    assert clock.interval_at(sent) == plan.chain_interval(10)  # two intervals ahead
    out = chain_request(plan, CDRequest(8, Kind.DISCHARGE, 0, 5, 3_000, 15_000), "peer-i-ev")
    assert out.kind == int(CDKind.DISCHARGE)
    assert out.limit_price_mc_per_kwh == 0  # a discharge takes any price
    assert clock.units(CDKind.DISCHARGE, out.energy_wh) == unit_cap(
        CDRequest(8, Kind.DISCHARGE, 0, 5, 3_000, 15_000), 10
    )


def test_requests_with_nothing_to_move_are_left_out() -> None:
    keep = CDRequest(0, Kind.CHARGE, 0, 3, 1, 1000)  # 1 Wh is still 6 W-intervals of 10 min
    zero = CDRequest(1, Kind.CHARGE, 0, 3, 0, 1000)
    tiny = CDRequest(2, Kind.DISCHARGE, 0, 3, 0, 1000)
    assert schedulable([keep, zero, tiny], 10) == [keep]


def test_undecided_intervals_carry_only_the_base_load() -> None:
    base = [100_000, 101_000, 99_000, 98_000]
    load = realised_load(base, {1: 120_000, 3: 90_000})
    assert load == [100_000, 120_000, 99_000, 90_000]
    assert pfl_eq_6_4(load) == pytest.approx(20**2 + 21**2 + 9**2)


def test_missed_intervals_are_those_with_work_left_and_no_decision() -> None:
    windows = {"a": Window(1, 4, 2000), "b": Window(3, 6, 1000)}
    decided = {1: {"a": 1000}, 2: {"a": 1000}, 4: {"b": 500}}
    # 0: nobody connected; 3: a is done, b connected with work left -> missed;
    # 5: b still has 500 left -> missed
    assert missed_intervals(7, windows, decided) == [3, 5]
    assert missed_intervals(7, windows, {1: {"a": 2000}, 3: {"b": 1000}}) == []


def test_energy_summary_counts_complete_charges() -> None:
    charge = [
        ({"delivered_wh": 5000, "status": "complete"}, CDRequest(0, Kind.CHARGE, 0, 2, 5000, 50)),
        ({"delivered_wh": 100, "status": "ended"}, CDRequest(1, Kind.CHARGE, 0, 2, 300, 50)),
        (None, CDRequest(2, Kind.CHARGE, 0, 2, 700, 50)),
    ]
    discharge = [
        ({"delivered_wh": 10, "status": "ended"}, CDRequest(3, Kind.DISCHARGE, 0, 2, 40, 9))
    ]
    summary = energy_summary(charge, discharge)
    assert summary == {
        "charge_requested_wh": 6000,
        "charge_delivered_wh": 5100,
        "charge_complete": 1,
        "charge_requests": 3,
        "discharge_offered_wh": 40,
        "discharge_given_wh": 10,
    }


def test_library_rows_rank_offline_best_on_the_chains_base_load() -> None:
    base = [50_000, 52_000, 60_000, 70_000, 65_000, 55_000]
    requests = [
        CDRequest(0, Kind.CHARGE, 0, 6, 6_000, 11_000),
        CDRequest(1, Kind.CHARGE, 1, 4, 2_000, 7_000),
    ]
    scenario = library_scenario("t", base, requests, 60, 360)
    rows = library_rows(scenario, 1.0)
    assert set(rows) == {"uncontrolled", "online", "offline"}
    for row in rows.values():
        assert len(row["load_kw"]) == len(base)
    assert rows["offline"]["eq6_4_kw2"] <= rows["online"]["eq6_4_kw2"] + 1e-6
    assert rows["offline"]["eq6_4_kw2"] <= rows["uncontrolled"]["eq6_4_kw2"] + 1e-6
    assert len(library_rows(scenario, 1.5)) == 4  # ePoB joins when c > 1


def test_decision_leads_measure_from_the_start_of_the_interval() -> None:
    plan = DayPlan(
        genesis_time_ms=1_000_000, first_interval=144, interval_ms=1000, interval_minutes=10
    )
    seen = {
        143: 0,  # before the day: ignored
        144: plan.start_ms(0) - 700,
        145: plan.start_ms(1) - 400,
        146: plan.start_ms(2) + 50,  # committed after its interval began
    }
    assert decision_leads(plan, seen) == {"n": 3, "p50_ms": 400, "min_ms": -50, "late": 1}
    assert decision_leads(plan, {})["n"] == 0


def test_the_closed_loop_day_meters_what_the_chain_scheduled() -> None:
    """Why (issue 14): the PFL a bench reports must be what the community's meters would see.
    The loop runs the real Application, the bridge's charger plan and OCPP profile, the
    simulated chargers and EVs and the meters' readings; three EVs after one metered day."""
    args = cdday._parser().parse_args(
        ["--loop", "--evs", "3", "--warmup-days", "1", "--noise-permille", "0"]
    )
    report = cdday_loop.run_loop(args)
    chain, energy = report["chain"], report["energy"]
    assert chain["roots_agreed"] == chain["blocks"]  # every block re-executed to the same root
    assert chain["decided_intervals"] > 0
    # The EVs drew what the chain scheduled and the meters measured it: every request is
    # complete, and the EV meters saw the energy asked for (the battery takes no more).
    assert energy["complete"] == energy["requests"] == 3
    assert abs(energy["ev_metered_wh"] - energy["requested_wh"]) <= energy["requests"]
    assert energy["chain_delivered_wh"] >= energy["requested_wh"]
    pfl = report["pfl_kw2"]
    assert pfl["metered"] < pfl["uncontrolled"]
    lines = cdday_loop.format_report(report)
    assert any(line.startswith("metered vs scheduled") for line in lines)
