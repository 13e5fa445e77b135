"""Days of a simulated household's meters, with weather and weekends, for the agent's figures.

The meter simulator (meterbridge/simulator.py) repeats one clear-sky weekday forever: on its
days persistence is exact and no forecaster can be judged.  These days keep its household (the
same PV curve, peak at 12:00, and the same apartment load scaled to one flat) and add what real
meters see, seeded so a figure can be reproduced:

* weather: each day's PV is the clear-sky curve times a clearness index that follows an AR(1)
  process (sunny spells and cloudy spells, persistence 0.6, mean 0.7, clipped to 0.1-1.0),
  with 10 % interval-to-interval noise on top (passing clouds);
* weekends: Saturdays and Sundays use the apartment's weekend profile (seed 003's table, as
  market.scheduling.loadprofiles embeds it), weekdays the weekday one;
* the household itself: each day's load is scaled by a normal factor (sd 5 %) and each
  interval by 8 % noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridchain.agent.forecast import is_weekend
from gridchain.market.scheduling.loadprofiles import DayType, hourly_profile_w
from gridchain.meterbridge.simulator import Household

FloatArray = npt.NDArray[np.float64]
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class SimulatedDays:
    first_day: int
    pv_kw: FloatArray  # (days, intervals per day)
    load_kw: FloatArray


def _load_shape_kw(household: Household, month: int, weekend: bool, per_day: int) -> FloatArray:
    """The apartment's hourly profile, interpolated to the interval, scaled to one flat."""
    hourly = np.asarray(
        hourly_profile_w(month, DayType.WEEKEND if weekend else DayType.WEEKDAY), dtype=np.float64
    )
    hours = np.arange(per_day) * 24 / per_day
    h0 = hours.astype(int) % 24
    frac = hours - np.floor(hours)
    w = hourly[h0] + (hourly[(h0 + 1) % 24] - hourly[h0]) * frac
    shape: FloatArray = household.load_scale * w / 1000
    return shape


def simulated_days(
    *,
    seed: int,
    days: int,
    first_day: int,
    per_day: int = 96,
    household: Household | None = None,
    hour_shift: float = 0.0,
) -> SimulatedDays:
    """``days`` days from UTC day ``first_day``; ``hour_shift`` moves the sun (and the load)
    by that many hours, as the simulator's daylight clock does."""
    h = household or Household()
    rng = np.random.default_rng(seed)
    hours = (np.arange(per_day) * 24 / per_day + hour_shift) % 24
    clear = np.array([h.pv_kw(float(x)) for x in hours])
    pv = np.zeros((days, per_day))
    load = np.zeros((days, per_day))
    clearness = 0.7
    shift_intervals = round(hour_shift * per_day / 24)
    for d in range(days):
        clearness = float(np.clip(0.7 + 0.6 * (clearness - 0.7) + rng.normal(0, 0.2), 0.1, 1.0))
        noise = np.clip(1 + rng.normal(0, 0.1, per_day), 0.0, None)
        pv[d] = clear * clearness * noise
        day = first_day + d
        month = int(np.datetime64(day, "D").astype(object).month)
        shape = np.roll(_load_shape_kw(h, month, is_weekend(day), per_day), -shift_intervals)
        level = max(0.5, 1 + rng.normal(0, 0.05))
        load[d] = shape * level * np.clip(1 + rng.normal(0, 0.08, per_day), 0.0, None)
    return SimulatedDays(first_day=first_day, pv_kw=pv, load_kw=load)


def tou_prices(
    per_day: int, tariffs: list[tuple[int, int, int, int]]
) -> tuple[FloatArray, FloatArray]:
    """(retail, feed-in) mc/kWh per interval from (start hour, end hour, retail, feed-in)."""
    retail = np.zeros(per_day)
    feed_in = np.zeros(per_day)
    for i in range(per_day):
        hour = math.floor(i * 24 / per_day)
        for start, end, r, f in tariffs:
            if start <= hour < end:
                retail[i], feed_in[i] = r, f
    return retail, feed_in
