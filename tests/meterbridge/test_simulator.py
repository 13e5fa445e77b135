"""The simulated household: physically sensible signs and registers that only grow."""

from __future__ import annotations

import pytest

from gridchain.meterbridge.profiles import decode, load_profile
from gridchain.meterbridge.simulator import Household, SimMeter, frame_seconds, household_with

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MIDNIGHT = 1_750_000_000_000 // DAY_MS * DAY_MS  # a day in June 2025 (UTC)


def test_pv_exports_by_day_and_is_dark_at_night() -> None:
    h = Household()
    assert h.power_kw("pv", MIDNIGHT + 2 * HOUR_MS) == 0
    assert h.power_kw("pv", MIDNIGHT + 12 * HOUR_MS) == pytest.approx(-h.pv_peak_kw)


def test_net_meter_is_the_sum_of_the_devices() -> None:
    h = Household()
    for hour in (3, 11, 12.5, 19):
        t = MIDNIGHT + int(hour * HOUR_MS)
        parts = sum(h.power_kw(kind, t) for kind in ("pv", "load", "ev", "battery"))
        assert h.power_kw("net", t) == pytest.approx(parts)


def test_load_follows_the_embedded_midrise_profile() -> None:
    h = Household()
    # June, 18:00: the building's 41.79 kW scaled to one flat
    assert h.load_kw(18.0, 5) == pytest.approx(41.79 * h.load_scale)


def test_absent_devices_measure_nothing() -> None:
    h = household_with(["Load"])
    t = MIDNIGHT + 19 * HOUR_MS
    assert h.power_kw("pv", t) == h.power_kw("ev", t) == h.power_kw("battery", t) == 0
    with pytest.raises(ValueError, match="unknown devices"):
        household_with(["Windmill"])


def test_registers_only_grow_and_decode_to_the_model() -> None:
    meter = SimMeter(1, load_profile("eastron-sdm120"), "pv")
    registers = [0] * meter.register_count()
    previous = None
    for minutes in range(0, 24 * 60, 90):
        t = MIDNIGHT + minutes * 60_000
        meter.fill(registers, t)
        m = decode(meter.profile, dict(enumerate(registers)))
        assert m.import_wh == 0
        if previous is not None:
            assert m.export_wh >= previous
        previous = m.export_wh
    # a clear-sky day of a 4 kW peak sine from 06:00 to 18:00: 4 * 24 / pi kWh
    assert previous == pytest.approx(4 * 24 / 3.14159265 * 1000, rel=0.02)


def test_line_time_of_an_eastron_energy_read_at_9600_baud() -> None:
    # request 8 bytes, answer 5 + 2 * 4, two 3.5-character gaps; 10 bits a character at 8N1
    assert frame_seconds(4, 9600) == pytest.approx((8 + 13 + 7) * 10 / 9600)
