"""The household's history as whole days of interval means (kW), from a file and the bridge.

The agent keeps no database of its own: each cycle it rebuilds the history it forecasts from
out of two sources, both optional,

* a CSV file (``start_ms,pv_kw,load_kw``, one row per interval): what a new agent starts from
  (an export of the old system's ``historical_data`` table, or a simulation of the house);
* the meter bridge's agent API (``GET /fetchHistoricalData``): the signed readings of the
  household's meters, whose cumulative registers are differenced into energy per interval.

The bridge's readings win where both have an interval.  The household's PV is what its PV
meters exported; its load is not metered by itself, so it is derived from the balance at the
connection: load = net import + PV - battery charge + battery discharge - EV charge + EV
discharge (the seed's Peer A: net = load + battery - PV).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gridchain.agent.errors import HistoryError

FloatArray = npt.NDArray[np.float64]
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Reading:
    """The part of a bridge reading the history needs (cumulative registers, Wh)."""

    interval_end_ms: int
    import_wh: int
    export_wh: int


def interval_energy_wh(
    readings: Iterable[Reading], interval_ms: int, *, exported: bool
) -> dict[int, float]:
    """Energy per interval (index = start_ms // interval_ms) from cumulative registers.

    The energy between two consecutive readings is spread evenly over the time between them,
    so a reading period that does not divide the interval still lands in the right intervals.
    """
    out: dict[int, float] = {}
    previous: Reading | None = None
    for reading in sorted(readings, key=lambda r: r.interval_end_ms):
        if previous is not None and reading.interval_end_ms > previous.interval_end_ms:
            register = "export_wh" if exported else "import_wh"
            wh = float(getattr(reading, register) - getattr(previous, register))
            start, end = previous.interval_end_ms, reading.interval_end_ms
            t = start
            while t < end:
                bucket = t // interval_ms
                stop = min(end, (bucket + 1) * interval_ms)
                out[bucket] = out.get(bucket, 0.0) + wh * (stop - t) / (end - start)
                t = stop
        previous = reading
    return out


def _add(into: dict[int, float], part: Mapping[int, float], sign: float) -> None:
    for k, v in part.items():
        into[k] = into.get(k, 0.0) + sign * v


@dataclass(frozen=True, slots=True)
class HouseholdMeters:
    """Per-interval energies (Wh) of a household's meters, by role."""

    net_import: Mapping[int, float]
    net_export: Mapping[int, float]
    pv_export: Mapping[int, float]
    battery_import: Mapping[int, float]
    battery_export: Mapping[int, float]
    ev_import: Mapping[int, float]
    ev_export: Mapping[int, float]

    def series_kw(self, interval_ms: int) -> tuple[dict[int, float], dict[int, float]]:
        """(PV kW, load kW) per interval the net meter covers."""
        hours = interval_ms / 3_600_000
        pv: dict[int, float] = {}
        load: dict[int, float] = {}
        for k in set(self.net_import) | set(self.net_export):
            gen = self.pv_export.get(k, 0.0)
            wh = (
                self.net_import.get(k, 0.0)
                - self.net_export.get(k, 0.0)
                + gen
                - self.battery_import.get(k, 0.0)
                + self.battery_export.get(k, 0.0)
                - self.ev_import.get(k, 0.0)
                + self.ev_export.get(k, 0.0)
            )
            pv[k] = gen / 1000 / hours
            load[k] = max(wh, 0.0) / 1000 / hours
        return pv, load


def read_csv(path: Path, interval_ms: int) -> tuple[dict[int, float], dict[int, float]]:
    """(PV kW, load kW) per interval from ``start_ms,pv_kw,load_kw`` rows."""
    pv: dict[int, float] = {}
    load: dict[int, float] = {}
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    start = int(row["start_ms"])
                    p, ld = float(row["pv_kw"]), float(row["load_kw"])
                except (KeyError, TypeError, ValueError):
                    raise HistoryError(
                        f"{path}:{n}: expected start_ms,pv_kw,load_kw numbers"
                    ) from None
                if not (math.isfinite(p) and math.isfinite(ld)) or p < 0 or ld < 0:
                    raise HistoryError(f"{path}:{n}: powers must be finite and >= 0")
                pv[start // interval_ms] = p
                load[start // interval_ms] = ld
    except OSError as exc:
        raise HistoryError(f"{path}: {exc}") from None
    return pv, load


def write_csv(
    path: Path, interval_ms: int, pv: Mapping[int, float], load: Mapping[int, float]
) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["start_ms", "pv_kw", "load_kw"])
        for k in sorted(pv):
            out.writerow([k * interval_ms, f"{pv[k]:.6f}", f"{load.get(k, 0.0):.6f}"])


@dataclass(frozen=True, slots=True)
class Days:
    """Whole UTC days of one quantity: ``values[d, i]`` is interval i of day ``first_day + d``."""

    first_day: int
    values: FloatArray
    #: intervals that had no data and were filled from the same interval a day earlier
    filled: int


def whole_days(series: Mapping[int, float], interval_ms: int, *, days: int, before_ms: int) -> Days:
    """The last ``days`` whole UTC days ending at or before ``before_ms``'s midnight.

    A missing interval takes the value of the same interval a day earlier (persistence), or
    zero on the first day; how many were filled is reported, and a day with no data at all is
    refused rather than invented.
    """
    if DAY_MS % interval_ms:
        raise HistoryError(f"an interval of {interval_ms} ms does not divide a day")
    per_day = DAY_MS // interval_ms
    last_day = before_ms // DAY_MS  # today, not whole yet: excluded
    first_day = last_day - days
    values = np.zeros((days, per_day))
    filled = 0
    for d in range(days):
        base = (first_day + d) * per_day
        present = [series.get(base + i) for i in range(per_day)]
        if all(v is None for v in present):
            raise HistoryError(
                f"no history for day {d + 1} of the last {days} (UTC day {first_day + d}); "
                "the agent needs whole days of readings or a history file covering them"
            )
        for i, v in enumerate(present):
            if v is None:
                filled += 1
                values[d, i] = values[d - 1, i] if d > 0 else 0.0
            else:
                values[d, i] = v
    return Days(first_day=first_day, values=values, filled=filled)
