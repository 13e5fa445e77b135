"""Re-planning during the day: today's readings so far correct the rest of today's forecast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridchain.agent.history import read_csv, write_csv
from gridchain.agent.intraday import MAX_FACTOR, correct_today
from tests.unit.agent.test_api import NOW_MS
from tests.unit.agent.test_cycle import DAY_MS, NOON_SHIFT_H, agent

FLAT = np.full(96, 2.0)


def test_a_morning_far_below_the_forecast_scales_the_rest_of_the_day() -> None:
    measured = {i: 1.0 for i in range(8)}
    out, c = correct_today(FLAT, measured, 8, threshold=0.3, min_intervals=4)
    assert c is not None
    assert (c.intervals, c.applied) == (8, True)
    assert c.factor == pytest.approx(0.5)
    assert c.nrmse == pytest.approx(1.0)  # RMSE 1 kW over a mean of 1 kW
    assert np.allclose(out[8:], 1.0)
    assert np.allclose(out[:8], 2.0)  # the past is not planned; left as forecast
    assert np.allclose(FLAT, 2.0)  # the input is not changed


def test_a_small_error_leaves_the_forecast_alone() -> None:
    measured = {i: 1.9 for i in range(8)}
    out, c = correct_today(FLAT, measured, 8, threshold=0.3, min_intervals=4)
    assert c is not None
    assert not c.applied
    assert c.factor == pytest.approx(0.95)
    assert out is FLAT


def test_too_few_measured_intervals_say_nothing() -> None:
    # three intervals, and the one in progress (index 3) does not count
    measured = {i: 0.1 for i in range(4)}
    out, c = correct_today(FLAT, measured, 3, threshold=0.3, min_intervals=4)
    assert c is None
    assert out is FLAT


def test_a_night_of_zeros_and_an_outlier_are_bounded() -> None:
    zeros = np.zeros(96)
    out, c = correct_today(zeros, {i: 0.0 for i in range(10)}, 10, threshold=0.3, min_intervals=4)
    assert c is not None
    assert (c.factor, c.applied, c.nrmse) == (1.0, False, 0.0)
    out, c = correct_today(FLAT, {i: 60.0 for i in range(10)}, 10, threshold=0.3, min_intervals=4)
    assert c is not None
    assert c.factor == MAX_FACTOR
    assert np.allclose(out[10:], 2.0 * MAX_FACTOR)


async def test_a_cloudy_morning_makes_the_next_plan_expect_less_pv(tmp_path: Path) -> None:
    for name in ("sunny", "cloudy"):
        (tmp_path / name).mkdir()
    sunny, _ = agent(tmp_path / "sunny", 4.0)
    cloudy, _ = agent(tmp_path / "cloudy", 4.0)
    # today's readings so far in the cloudy house: PV at a fifth of a clear day's
    path = tmp_path / "cloudy" / "h.csv"
    pv, load = read_csv(path, 900_000)
    today = NOW_MS // DAY_MS * 96
    now_index = (NOW_MS % DAY_MS) // 900_000
    hours = (np.arange(96) / 4 + NOON_SHIFT_H) % 24
    shape = np.clip(np.sin(np.pi * (hours - 6) / 12), 0, None) * 4.0
    for i in range(now_index + 1):  # the interval in progress too: it must not count
        pv[today + i] = float(shape[i] * 0.2)
        load[today + i] = 0.6
    write_csv(path, 900_000, pv, load)

    plan_sunny = await sunny.cycle()
    plan_cloudy = await cloudy.cycle()
    assert sunny.forecast is not None
    assert cloudy.forecast is not None
    assert sunny.forecast.pv_intraday is None  # nothing of today measured
    c = cloudy.forecast.pv_intraday
    assert c is not None
    assert c.applied
    assert c.intervals == now_index
    assert c.factor < 0.4
    load_c = cloudy.forecast.load_intraday
    assert load_c is not None
    assert not load_c.applied  # the load was as forecast (0.6 kW every day)
    # the new plan's slots of today expect the corrected PV
    today_slots = [
        (s, c2)
        for s, c2 in zip(plan_sunny.slots, plan_cloudy.slots, strict=True)
        if s.start_ms // DAY_MS == NOW_MS // DAY_MS and s.pv_kw > 0
    ]
    assert today_slots
    for s, c2 in today_slots:
        assert c2.pv_kw == pytest.approx(s.pv_kw * c.factor)
