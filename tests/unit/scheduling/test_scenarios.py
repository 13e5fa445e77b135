"""Seeded scenarios follow the source's user-behaviour model and the embedded data."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gridchain.market.scheduling.errors import ScenarioError
from gridchain.market.scheduling.loadprofiles import (
    MONTHS,
    DayType,
    annual_mean_w,
    base_load_w,
    hourly_profile_w,
)
from gridchain.market.scheduling.model import CDRequest, Kind
from gridchain.market.scheduling.scenarios import CH3, CH4, PRESETS, STANDARD, generate, scaled

#: The source's hourly load profiles (DOE commercial reference building, midrise apartment), kept
#: beside this test as they were delivered, so the embedded integer profile is checked against
#: them on every machine.
PROFILE_CSV = Path(__file__).resolve().parent / "data"


def test_the_same_seed_gives_the_same_scenario() -> None:
    assert generate(STANDARD, 42) == generate(STANDARD, 42)
    assert generate(STANDARD, 42) != generate(STANDARD, 43)


def test_standard_scenario_follows_the_source_parameters() -> None:
    scenario = generate(STANDARD, 7)
    assert scenario.interval_min == 10
    assert scenario.n_intervals == 144
    assert len(scenario.requests) == 100
    day = range(0, 72)  # 06:00-18:00
    night = range(75, 142)  # 18:30-05:30 (+1), horizon starts at 06:00
    for r in scenario.requests:
        inside_day = r.arrival in day and r.departure - 1 in day
        inside_night = r.arrival in night and r.departure - 1 in night
        assert inside_day or inside_night, r
        if r.kind is Kind.CHARGE:
            assert r.max_rate_w in {3_000, 7_000, 22_000, 43_000, 50_000}
            # Initial SOC >= 0.2 and target 0.8: at most 0.6 of the largest battery.
            assert r.energy_wh <= 0.6 * 60_000
        else:
            assert r.max_rate_w <= 15_000
            # Discharge floor 0.5 and initial SOC <= 0.8: at most 0.3 of a battery.
            assert r.energy_wh <= 0.3 * 60_000
        assert r.energy_wh <= r.max_rate_w * (r.departure - r.arrival) * 10 / 60


def test_population_shares_follow_the_parameters() -> None:
    scenario = generate(scaled(STANDARD, 2000), 3)
    kinds = [r.kind for r in scenario.requests]
    share = kinds.count(Kind.DISCHARGE) / len(kinds)
    # One in three offers V2G, and only if above the 0.5 floor (half of U[0.2, 0.8]).
    assert 0.13 < share < 0.2
    night = sum(1 for r in scenario.requests if r.arrival >= 75) / len(kinds)
    assert 0.65 < night < 0.75


def test_chapter_three_has_one_battery_and_one_rate_and_no_v2g() -> None:
    scenario = generate(CH3, 1)
    assert scenario.interval_min == 30
    assert all(r.kind is Kind.CHARGE and r.max_rate_w == 3_500 for r in scenario.requests)
    assert all(r.energy_wh <= 0.6 * 36_000 for r in scenario.requests)


def test_chapter_four_chargers_are_slow_and_fast_at_four_to_one() -> None:
    scenario = generate(scaled(CH4, 1000), 1)
    charge = [r for r in scenario.requests if r.kind is Kind.CHARGE]
    fast = sum(1 for r in charge if r.max_rate_w == 43_000) / len(charge)
    assert 0.15 < fast < 0.25


def test_base_load_scales_the_building_profile_to_the_community() -> None:
    load = base_load_w(
        households=200,
        household_mean_w=800,
        month=1,
        day_type=DayType.WEEKDAY,
        interval_min=60,
        start_minute=0,
        n_intervals=24,
    )
    hourly = hourly_profile_w(1, DayType.WEEKDAY)
    scale = 200 * 800 / annual_mean_w()
    # Interpolating between hour centres keeps each hourly value at its own centre.
    assert load == tuple(round(v * scale) for v in hourly)


def test_the_building_mean_matches_the_sources_table_one() -> None:
    assert annual_mean_w() == pytest.approx(25_590, abs=5)  # "Average (kW) 25.59"


def test_weekend_evening_hours_fall_back_to_weekday_values() -> None:
    weekend = hourly_profile_w(8, DayType.WEEKEND)
    weekday = hourly_profile_w(8, DayType.WEEKDAY)
    assert weekend[20] == 44_390
    assert weekend[21:] == weekday[21:]


@pytest.mark.parametrize("day_type", list(DayType))
def test_embedded_profiles_equal_the_source_csv(day_type: DayType) -> None:
    path = PROFILE_CSV / f"midrise_apartment_{day_type.value}_kw.csv"
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for month, name in enumerate(MONTHS, start=1):
        profile = hourly_profile_w(month, day_type)
        for row in rows:
            assert profile[int(row["hour"])] == round(float(row[name]) * 1000)


def test_bad_parameters_and_requests_are_refused() -> None:
    with pytest.raises(ScenarioError):
        replace(STANDARD, interval_min=7)
    with pytest.raises(ScenarioError):
        replace(STANDARD, soc_init_range=(0.5, 1.5))
    with pytest.raises(ScenarioError):
        CDRequest(1, Kind.CHARGE, arrival=5, departure=5, energy_wh=1, max_rate_w=1)
    with pytest.raises(ScenarioError):
        CDRequest(1, Kind.CHARGE, arrival=0, departure=5, energy_wh=1, max_rate_w=0)
    with pytest.raises(ScenarioError):
        hourly_profile_w(13, DayType.WEEKDAY)


def test_every_preset_generates() -> None:
    for params in PRESETS.values():
        scenario = generate(params, 0)
        assert scenario.n_intervals * scenario.interval_min == 1440
        assert np.all(np.asarray(scenario.base_load_w) > 0)
