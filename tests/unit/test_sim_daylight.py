"""The demo's daylight clock: a night-time start still meters PV (issue 15, item 5).

The time is injected (a start at 02:30 UTC), not waited for."""

from __future__ import annotations

import calendar
import json
from pathlib import Path

from gridchain.meterbridge.profiles import load_profile
from gridchain.meterbridge.simulator import (
    DAYLIGHT_HOURS,
    MS_PER_HOUR,
    Household,
    MeterSimulator,
    SimClock,
    SimMeter,
    daylight_offset_ms,
    household_meters,
)

NIGHT_MS = calendar.timegm((2026, 12, 5, 2, 30, 0)) * 1000


def test_night_start_moves_to_the_morning_keeping_minutes() -> None:
    shifted = NIGHT_MS + daylight_offset_ms(NIGHT_MS)
    assert (shifted % (24 * MS_PER_HOUR)) / MS_PER_HOUR == 10.5
    assert daylight_offset_ms(NIGHT_MS) % MS_PER_HOUR == 0


def test_a_daytime_start_is_left_alone() -> None:
    noon = NIGHT_MS + 10 * MS_PER_HOUR
    assert daylight_offset_ms(noon) == 0
    assert DAYLIGHT_HOURS[0] <= 12 < DAYLIGHT_HOURS[1]


def test_every_hour_of_the_day_meters_pv_for_the_demo() -> None:
    """Whatever hour the demo starts, its PV meter exports during the next ten minutes."""
    for hour in range(24):
        now = NIGHT_MS - 2 * MS_PER_HOUR + hour * MS_PER_HOUR
        clock_start = now + daylight_offset_ms(now)
        pv = SimMeter(2, load_profile("eastron-sdm120"), "pv", Household())
        pv.advance(clock_start)
        pv.advance(clock_start + 10 * 60_000)
        assert pv.export_wh > 100, (hour, pv.export_wh)  # 4 kW peak: hundreds of Wh


def test_utc_clock_at_night_meters_no_pv() -> None:
    """The honest default: the sun follows UTC, so the same night start exports nothing."""
    pv = SimMeter(2, load_profile("eastron-sdm120"), "pv", Household())
    pv.advance(NIGHT_MS)
    pv.advance(NIGHT_MS + 10 * 60_000)
    assert pv.export_wh == 0


def test_registers_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "registers.json"
    first = MeterSimulator(household_meters(1), clock=SimClock(start_ms=NIGHT_MS))
    for m in first.meters.values():
        m.advance(NIGHT_MS)
        m.advance(NIGHT_MS + 8 * MS_PER_HOUR)  # a morning of energy
    first.save_registers(path)
    saved = json.loads(path.read_text())
    assert saved["2"]["export_wh"] > 0
    second = MeterSimulator(household_meters(1))
    assert second.restore_registers(path) == 4
    for sid, m in second.meters.items():
        assert m.import_wh == first.meters[sid].import_wh
        assert m.export_wh == first.meters[sid].export_wh
