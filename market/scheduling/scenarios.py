"""Seeded scenarios: a community's base load and its EVs' charge/discharge requests.

The user-behaviour model follows the source (ch. 3.2, 4.4.1, 5.4.2, 6.5.3): every EV is connected
in one of two segments of the day, 06:00-18:00 or 18:30-05:30 (+1); its initial state of charge
is uniform in [0.2, 0.8]; a charge request brings it to 0.8, a discharge (V2G) request may take
it down to 0.5; batteries are 8.8 kWh and 60 kWh at 4:1 (36 kWh for ch. 3); chargers are
3/7/22/43/50 kW; V2G discharges at up to 15 kW; the decision interval is 10 minutes.

What the source leaves open we fix here and say so: the source fits the number of connected EVs
with a sum of sines to data we do not have, so we draw each EV's segment (30 % day, 70 % night,
after the source's observation that home charging peaks from 20:00 to 08:00), its arrival uniformly
in the first half of the segment and its departure uniformly in the last quarter, which keeps
most EVs connected for 6-10 hours as the source reports.  One EV in three offers V2G (the 2:1
charge:discharge ratio of ch. 5) if its state of charge is above the discharge floor; the others
ask to be charged.  A charge request larger than the charger can deliver in the window is
clipped to what it can deliver (the source's CV_i <= U_i (t_e - t_s)).

The scheduling horizon runs from 06:00 to 06:00 so both segments fall inside one day.  Randomness
comes only from the numpy Generator seeded by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from gridchain.market.scheduling.errors import ScenarioError
from gridchain.market.scheduling.loadprofiles import DayType, base_load_w
from gridchain.market.scheduling.model import CDRequest, Kind, Scenario

DAY_MINUTES = 1440


@dataclass(frozen=True, slots=True)
class Segment:
    """A connection segment in clock minutes (end may pass midnight) and its share of EVs."""

    start_minute: int
    end_minute: int
    share: float


@dataclass(frozen=True, slots=True)
class ScenarioParams:
    """Everything that shapes a scenario; the presets below are the source's chapters."""

    name: str = "ch6-standard"
    households: int = 200
    evs: int = 100
    interval_min: int = 10
    start_minute: int = 360
    month: int = 1
    day_type: DayType = DayType.WEEKDAY
    #: Mean demand of one household.  The building profile is scaled to the community with it;
    #: 800 W is our assumption (about the building's mean per dwelling for a building of ~32).
    household_mean_w: int = 800
    #: (capacity Wh, weight) pairs.
    battery_mix_wh: tuple[tuple[int, int], ...] = ((8_800, 4), (60_000, 1))
    #: (charger rate W, weight) pairs.
    charger_mix_w: tuple[tuple[int, int], ...] = (
        (3_000, 1),
        (7_000, 1),
        (22_000, 1),
        (43_000, 1),
        (50_000, 1),
    )
    soc_init_range: tuple[float, float] = (0.2, 0.8)
    soc_target: float = 0.8
    discharge_floor: float = 0.5
    v2g_share: float = 1 / 3
    discharge_rate_w: int = 15_000
    segments: tuple[Segment, ...] = field(
        default=(Segment(360, 1080, 0.3), Segment(1110, 1770, 0.7))
    )
    arrival_spread: float = 0.5
    departure_spread: float = 0.25
    transformer_limit_w: int | None = None

    def __post_init__(self) -> None:
        if self.households <= 0 or self.evs < 0:
            raise ScenarioError("households must be positive and evs non-negative")
        if DAY_MINUTES % self.interval_min:
            raise ScenarioError("interval_min must divide a day")
        lo, hi = self.soc_init_range
        if not 0.0 <= lo <= hi <= 1.0 or not 0.0 <= self.discharge_floor <= 1.0:
            raise ScenarioError("states of charge must lie in [0, 1]")
        if not 0.0 <= self.v2g_share <= 1.0:
            raise ScenarioError("v2g_share must lie in [0, 1]")
        if not self.battery_mix_wh or not self.charger_mix_w or not self.segments:
            raise ScenarioError("battery mix, charger mix and segments must not be empty")
        for seg in self.segments:
            if not self.start_minute <= seg.start_minute < seg.end_minute:
                raise ScenarioError("segments must start inside the horizon and end after")
            if seg.end_minute > self.start_minute + DAY_MINUTES:
                raise ScenarioError("segments must end inside the horizon")

    @property
    def n_intervals(self) -> int:
        return DAY_MINUTES // self.interval_min


#: Ch. 6 (section 6.5.3): 200 households, 100 EVs, 10-minute decisions, V2G at 15 kW.
STANDARD = ScenarioParams()

#: Ch. 3 (Table 3-B): 100 households, 100 EVs of 36 kWh charged at 3.5 kW, 30-minute segments,
#: no discharge.
CH3 = ScenarioParams(
    name="ch3",
    households=100,
    interval_min=30,
    battery_mix_wh=((36_000, 1),),
    charger_mix_w=((3_500, 1),),
    v2g_share=0.0,
)

#: Ch. 4 (section 4.4.1): 100 households, 8.8/60 kWh batteries, 3 kW and 43 kW chargers at 4:1,
#: charging and discharging orders, half-hourly.
CH4 = ScenarioParams(
    name="ch4",
    households=100,
    interval_min=30,
    charger_mix_w=((3_000, 4), (43_000, 1)),
)

#: Ch. 5 (section 5.4.2): 200 households, 100 EVs, chargers of 3 to 50 kW, 2:1 charge to
#: discharge, results per one-hour slot.
CH5 = ScenarioParams(name="ch5", interval_min=60)

PRESETS: dict[str, ScenarioParams] = {
    "ch3": CH3,
    "ch4": CH4,
    "ch5": CH5,
    "ch6": STANDARD,
}


def scaled(params: ScenarioParams, evs: int) -> ScenarioParams:
    """The same community with ``evs`` vehicles and households grown in proportion."""
    households = max(1, round(params.households * evs / max(1, params.evs)))
    return replace(params, evs=evs, households=households, name=f"{params.name}-{evs}ev")


def _pick(rng: np.random.Generator, mix: tuple[tuple[int, int], ...]) -> int:
    weights = np.asarray([w for _, w in mix], dtype=np.float64)
    index = int(rng.choice(len(mix), p=weights / weights.sum()))
    return mix[index][0]


def generate(params: ScenarioParams, seed: int) -> Scenario:
    """Build the scenario for ``seed``; the same seed always gives the same requests."""
    rng = np.random.default_rng(seed)
    step = params.interval_min
    base = base_load_w(
        households=params.households,
        household_mean_w=params.household_mean_w,
        month=params.month,
        day_type=params.day_type,
        interval_min=step,
        start_minute=params.start_minute,
        n_intervals=params.n_intervals,
    )
    shares = np.asarray([s.share for s in params.segments], dtype=np.float64)
    requests: list[CDRequest] = []
    for ev in range(params.evs):
        seg = params.segments[int(rng.choice(len(params.segments), p=shares / shares.sum()))]
        length = seg.end_minute - seg.start_minute
        arrive = seg.start_minute + rng.uniform(0.0, params.arrival_spread) * length
        depart = seg.end_minute - rng.uniform(0.0, params.departure_spread) * length
        arrival = math.ceil((arrive - params.start_minute) / step)
        departure = math.floor((depart - params.start_minute) / step)
        if departure <= arrival:
            departure = arrival + 1
        capacity_wh = _pick(rng, params.battery_mix_wh)
        charger_w = _pick(rng, params.charger_mix_w)
        soc = float(rng.uniform(*params.soc_init_range))
        wants_v2g = bool(rng.uniform() < params.v2g_share)
        window_h = (departure - arrival) * step / 60.0
        if wants_v2g and soc > params.discharge_floor:
            rate = min(params.discharge_rate_w, charger_w)
            energy = (soc - params.discharge_floor) * capacity_wh
            kind = Kind.DISCHARGE
        else:
            rate = charger_w
            energy = max(0.0, params.soc_target - soc) * capacity_wh
            kind = Kind.CHARGE
        energy_wh = min(int(energy), int(rate * window_h))
        requests.append(
            CDRequest(
                request_id=ev,
                kind=kind,
                arrival=arrival,
                departure=departure,
                energy_wh=energy_wh,
                max_rate_w=rate,
            )
        )
    return Scenario(
        name=params.name,
        interval_min=step,
        base_load_w=base,
        requests=tuple(requests),
        start_minute=params.start_minute,
        transformer_limit_w=params.transformer_limit_w,
    )
