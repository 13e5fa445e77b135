"""Is a decoded measurement something this meter can have measured?  (issue 12)

A value the record's integer fields cannot hold (a voltage of 1e9 V, a power of 1e20 W) would
make signing fail, and a value the meter model cannot produce (an import jump of 1e12 kWh in
one interval, a power far beyond the rated current) is not a measurement: a garbled or late
answer, a broken meter or a wrong register map.  Neither may become an OK record, and neither
may stop the bridge: the caller records the interval as UNAVAILABLE.

The bounds come from the profile's ``[rating]`` (the maker's data sheet): voltage, the power
register's magnitude, and how fast the energy registers can grow (rated power times the
interval's duration, plus one step of the register's resolution).
"""

from __future__ import annotations

import math
from decimal import Decimal

from gridchain.meterbridge.profiles import (
    Measurement,
    Profile,
    RegisterSpec,
    RegisterType,
    unit_factor,
)
from gridchain.protocol.errors import GridchainError

#: The record's integer fields (protocol.meter.ReadingRecord): voltage_dv U32, power_w I64,
#: import_wh / export_wh U64.
MAX_U32 = 2**32 - 1
MAX_U64 = 2**64 - 1
MIN_I64, MAX_I64 = -(2**63), 2**63 - 1
MS_PER_HOUR = 3_600_000


class ImplausibleReadingError(GridchainError):
    """A decoded value outside what the record or the meter's rating allows."""

    code = "implausible_reading"


def register_step_wh(spec: RegisterSpec, value_wh: int) -> int:
    """The energy register's resolution near ``value_wh``, in Wh (at least 1).

    An integer register moves in steps of one unit of its last decimal; a float32 one in steps
    of its unit in the last place, which grows with the value (24-bit mantissa).
    """
    factor = unit_factor(spec.unit)
    if spec.type is RegisterType.FLOAT32:
        return max(1, math.ceil(value_wh / 2**23)) + 1
    return max(1, math.ceil(factor * Decimal(1).scaleb(-spec.decimals)))


def check_plausible(
    profile: Profile,
    m: Measurement,
    *,
    previous: tuple[int, int] | None,
    duration_ms: int,
) -> None:
    """Raise ImplausibleReadingError unless ``m`` fits the record and the profile's rating.

    ``previous`` is the last accepted (import_wh, export_wh) of this meter, if known, and
    ``duration_ms`` the interval the new record covers; the energy registers may grow by at
    most the rated energy rate over it.  A decrease is not judged here (the caller's rule).
    """
    rating = profile.rating
    if not 0 <= m.voltage_dv <= MAX_U32 or m.voltage_dv > rating.max_voltage_v * 10:
        raise ImplausibleReadingError(
            f"voltage {m.voltage_dv / 10} V is outside 0..{rating.max_voltage_v} V"
        )
    if not MIN_I64 <= m.power_w <= MAX_I64 or abs(m.power_w) > rating.max_power_w:
        raise ImplausibleReadingError(
            f"power {m.power_w} W is beyond the rated {rating.max_power_w} W"
        )
    for name, value in (("import", m.import_wh), ("export", m.export_wh)):
        if not 0 <= value <= MAX_U64:
            raise ImplausibleReadingError(f"{name} register {value} Wh does not fit the record")
    if previous is None:
        return
    for name, value, before, spec in (
        ("import", m.import_wh, previous[0], profile.registers["import_energy"]),
        ("export", m.export_wh, previous[1], profile.registers["export_energy"]),
    ):
        limit = -(-rating.energy_rate_w * max(duration_ms, 0) // MS_PER_HOUR)
        limit += register_step_wh(spec, value)
        if value - before > limit:
            raise ImplausibleReadingError(
                f"{name} grew by {value - before} Wh in {duration_ms} ms, more than the rated "
                f"{rating.energy_rate_w} W allows ({limit} Wh)"
            )
