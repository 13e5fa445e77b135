"""The plausibility bounds at their edges: the record's integer fields and the profile's rating."""

from __future__ import annotations

import pytest

from gridchain.meterbridge.plausibility import (
    MAX_I64,
    MAX_U32,
    MAX_U64,
    ImplausibleReadingError,
    check_plausible,
    register_step_wh,
)
from gridchain.meterbridge.profiles import Measurement, load_profile

SDM120 = load_profile("eastron-sdm120")  # 300 V, 13 500 W, float32 kWh
GENERIC = load_profile("generic")  # 300 V, 32 767 W, int16 kWh with 1 decimal
FIFTEEN_MIN = 900_000


def ok(**kw: int) -> Measurement:
    values = {"import_wh": 1_000_000, "export_wh": 0, "power_w": 500, "voltage_dv": 2301} | kw
    return Measurement(**values)


def test_values_inside_the_rating_pass() -> None:
    check_plausible(SDM120, ok(), previous=None, duration_ms=FIFTEEN_MIN)
    check_plausible(SDM120, ok(voltage_dv=3000, power_w=-13_500), previous=None, duration_ms=0)


@pytest.mark.parametrize(
    "m",
    [
        ok(voltage_dv=3001),
        ok(voltage_dv=MAX_U32 + 1),
        ok(power_w=13_501),
        ok(power_w=-13_501),
        ok(power_w=MAX_I64 + 1),
        ok(import_wh=MAX_U64 + 1),
        ok(export_wh=-1),
    ],
)
def test_values_beyond_the_record_or_the_rating_are_implausible(m: Measurement) -> None:
    with pytest.raises(ImplausibleReadingError):
        check_plausible(SDM120, m, previous=None, duration_ms=FIFTEEN_MIN)


def test_energy_per_interval_is_bounded_by_the_rated_power() -> None:
    # 32 767 W for 15 min is 8 191.75 Wh, rounded up, plus one register step (100 Wh)
    step = register_step_wh(GENERIC.registers["import_energy"], 0)
    assert step == 100
    limit = 8_192 + step
    before = (1_000_000, 0)
    check_plausible(
        GENERIC, ok(import_wh=1_000_000 + limit), previous=before, duration_ms=FIFTEEN_MIN
    )
    with pytest.raises(ImplausibleReadingError, match="import grew"):
        check_plausible(
            GENERIC, ok(import_wh=1_000_001 + limit), previous=before, duration_ms=FIFTEEN_MIN
        )
    with pytest.raises(ImplausibleReadingError, match="export grew"):
        check_plausible(
            GENERIC, ok(export_wh=1_000_000_000_000_000), previous=before, duration_ms=FIFTEEN_MIN
        )


def test_a_three_phase_meter_grows_with_all_phases() -> None:
    sdm630 = load_profile("eastron-sdm630")
    assert sdm630.rating.energy_rate_w == 90_000
    # 60 kW for 15 min: beyond phase 1's 30 kW, within the three phases' 90 kW
    check_plausible(
        sdm630, ok(import_wh=1_015_000), previous=(1_000_000, 0), duration_ms=FIFTEEN_MIN
    )
