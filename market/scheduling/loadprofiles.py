"""Hourly load of a midrise apartment building, embedded, and the community base load built from it.

Where the numbers come from: the "Hour Profile weekdays for Midrise Apartment at 2020" table
(Tab. II) and the weekend table that follows it in seed document 003 (smart community grid paper;
HOMER simulation of a midrise apartment building in Bergamo), as copied into the project's shared
data as ``midrise_apartment_weekday_kw.csv`` and ``midrise_apartment_weekend_kw.csv`` (hour x
month, kW).  They are embedded here as integer W because a user's machine has no shared data and
market/ reads no files.

The weekend table in the source stops after hour 20; hours 21-23 of the weekend profile use the
weekday values of the same month (at hour 20 the two tables differ by under 9 %), so a weekend
day is complete.  That substitution is ours and is the only place the data are not the source's.

The community base load is the month's profile shape scaled to ``households`` homes of
``household_mean_w`` average demand (the scale is our assumption, see :func:`base_load_w`),
resampled from hourly means to the scheduling interval by linear interpolation between hour
centres so that the resampling does not add steps the ramp metrics (eqs. 4.4, 6.4) would count.
"""

from __future__ import annotations

import enum

from gridchain.market.scheduling.errors import ScenarioError


class DayType(enum.Enum):
    WEEKDAY = "weekday"
    WEEKEND = "weekend"


#: weekday: hour -> 12 monthly values (jan..dec), W; 24 hours in the source table
_WEEKDAY_W: tuple[tuple[int, ...], ...] = (
    (17920, 17510, 16010, 15700, 15830, 17140, 18360, 20510, 17310, 15530, 16320, 17180),  # 00h
    (17450, 17030, 15690, 15450, 15440, 16450, 17550, 19530, 16710, 15260, 15810, 16680),  # 01h
    (17240, 16810, 15550, 15340, 15260, 16060, 16980, 18890, 16360, 15140, 15570, 16460),  # 02h
    (17160, 16730, 16970, 17440, 17330, 17990, 18800, 20670, 18360, 17240, 15660, 16370),  # 03h
    (19260, 18870, 20730, 21500, 18430, 18220, 20120, 24470, 23040, 21790, 17990, 18470),  # 04h
    (23770, 23400, 24720, 22460, 22040, 23390, 24710, 26310, 25670, 26580, 22590, 22970),  # 05h
    (29020, 26780, 24320, 24700, 25080, 27060, 28770, 30270, 26880, 25050, 25650, 28180),  # 06h
    (27170, 26050, 24190, 23730, 24200, 26320, 28310, 30340, 26190, 23700, 24670, 26240),  # 07h
    (25450, 24970, 21840, 20870, 21590, 24050, 26270, 29110, 23900, 20920, 23470, 24670),  # 08h
    (22490, 22020, 18910, 17970, 19000, 21850, 24490, 28560, 21900, 18120, 20670, 21760),  # 09h
    (19410, 18960, 18110, 18170, 19560, 22680, 25590, 30900, 22940, 18440, 18050, 18710),  # 10h
    (19400, 18990, 18010, 17990, 19490, 22890, 25980, 32280, 23460, 18270, 18190, 18740),  # 11h
    (18980, 18630, 17720, 17730, 19360, 22900, 26200, 33000, 23810, 18080, 17950, 18390),  # 12h
    (18580, 18280, 17510, 17630, 19370, 23290, 26260, 33690, 24100, 17970, 17620, 18050),  # 13h
    (18380, 18080, 18340, 19020, 20960, 25360, 28090, 35630, 25700, 19360, 17570, 17910),  # 14h
    (19730, 19430, 23810, 26500, 28810, 34040, 36350, 43660, 33610, 26880, 19430, 19290),  # 15h
    (30040, 27030, 30280, 32560, 35180, 41170, 43090, 50220, 40000, 33870, 31120, 31870),  # 16h
    (38430, 37430, 35200, 34680, 37540, 43610, 45590, 52180, 43530, 40100, 37780, 37970),  # 17h
    (40460, 40200, 38980, 37480, 37070, 41790, 43800, 51840, 45450, 39190, 39580, 39990),  # 18h
    (39550, 39280, 38330, 38450, 40580, 44600, 46850, 52170, 44440, 38640, 38640, 39060),  # 19h
    (39180, 38900, 34460, 32920, 34680, 38760, 40890, 44920, 38230, 33060, 37730, 38670),  # 20h
    (33820, 33530, 28010, 25900, 27150, 30370, 32350, 35850, 30160, 25950, 32120, 33270),  # 21h
    (27080, 26750, 21820, 19990, 20740, 23170, 24790, 27900, 23210, 19930, 25290, 26470),  # 22h
    (21380, 21030, 17490, 16290, 16640, 18380, 19720, 22390, 18610, 16180, 19650, 20720),  # 23h
)
#: weekend: hour -> 12 monthly values (jan..dec), W; 21 hours in the source table
_WEEKEND_W: tuple[tuple[int, ...], ...] = (
    (18450, 17630, 16070, 15680, 16260, 17270, 19880, 21330, 16990, 15680, 16290, 16850),  # 00h
    (18010, 17170, 15780, 15400, 15830, 16560, 18840, 20250, 16410, 15420, 15780, 16340),  # 01h
    (17820, 16980, 15640, 15240, 15560, 16140, 18160, 19340, 16070, 15290, 15540, 16120),  # 02h
    (17760, 16930, 17250, 17300, 17550, 18090, 19930, 20980, 18000, 17380, 15700, 16030),  # 03h
    (19890, 19050, 21230, 21260, 18570, 18320, 21270, 24820, 22530, 21920, 18090, 18140),  # 04h
    (24420, 23570, 25450, 22210, 22410, 23590, 25820, 26440, 24890, 27020, 22720, 22670),  # 05h
    (29650, 26900, 24530, 24650, 25570, 27290, 30070, 30560, 25780, 24900, 25430, 27920),  # 06h
    (27710, 26070, 23710, 23220, 24180, 26100, 29430, 30040, 24280, 23010, 24430, 25820),  # 07h
    (25250, 24260, 21160, 20360, 21650, 23910, 27650, 28420, 21970, 20160, 22880, 23540),  # 08h
    (22260, 21260, 18290, 17490, 19190, 21900, 26170, 27580, 20130, 17230, 19980, 20650),  # 09h
    (19120, 18120, 17850, 17710, 19810, 23020, 27660, 29680, 21090, 17390, 17410, 17610),  # 10h
    (19050, 18090, 17730, 17550, 19990, 23570, 28660, 31040, 21620, 17200, 17480, 17680),  # 11h
    (18670, 17770, 17430, 17070, 19810, 23980, 28890, 31590, 21940, 16800, 17160, 17430),  # 12h
    (18110, 17300, 17210, 16840, 19880, 24760, 29460, 32030, 22160, 16670, 16800, 17010),  # 13h
    (17900, 17100, 18170, 18190, 21430, 26840, 31740, 33690, 23610, 18060, 16830, 16850),  # 14h
    (19300, 18430, 24210, 25710, 29170, 34570, 40230, 41840, 31090, 25570, 18970, 18240),  # 15h
    (29640, 26110, 30970, 32180, 36310, 41710, 47510, 48930, 37770, 33680, 30770, 30860),  # 16h
    (38810, 37210, 35720, 34420, 38580, 44580, 50000, 50860, 41230, 39860, 37630, 37720),  # 17h
    (40970, 40050, 39160, 37160, 37800, 42950, 47760, 50440, 42840, 38990, 39400, 39870),  # 18h
    (40090, 39170, 38570, 38240, 41330, 45910, 50500, 51370, 41990, 38540, 38530, 38930),  # 19h
    (39770, 38820, 34190, 32730, 35410, 40100, 43900, 44390, 36010, 33020, 37480, 38540),  # 20h
)

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def hourly_profile_w(month: int, day_type: DayType) -> tuple[int, ...]:
    """The 24 hourly mean loads (W) of the building for ``month`` (1-12) and day type."""
    if not 1 <= month <= 12:
        raise ScenarioError(f"month must be 1-12, got {month}")
    column = month - 1
    weekday = tuple(row[column] for row in _WEEKDAY_W)
    if day_type is DayType.WEEKDAY:
        return weekday
    weekend = tuple(row[column] for row in _WEEKEND_W)
    return weekend + weekday[len(weekend) :]


def annual_mean_w() -> float:
    """Mean of the weekday table over all months and hours: the building's typical demand."""
    import numpy as np  # noqa: PLC0415 - scenarios only: a validator needs no numpy

    return float(np.mean(np.asarray(_WEEKDAY_W, dtype=np.float64)))


def base_load_w(
    *,
    households: int,
    household_mean_w: int,
    month: int,
    day_type: DayType,
    interval_min: int,
    start_minute: int,
    n_intervals: int,
) -> tuple[int, ...]:
    """Community base load per interval (integer W) for a horizon starting at ``start_minute``.

    The building profile is scaled by ``households * household_mean_w / annual_mean_w()``, so a
    month with more demand than the year's average stays above it.  Values are taken at interval
    centres from the periodic piecewise-linear curve through the hourly means placed at hour
    centres (the day wraps, so a horizon from 06:00 to 06:00 reads the early hours of the same
    typical day).
    """
    if households <= 0 or household_mean_w <= 0:
        raise ScenarioError("households and household_mean_w must be positive")
    if interval_min <= 0 or n_intervals <= 0:
        raise ScenarioError("interval_min and n_intervals must be positive")
    import numpy as np  # noqa: PLC0415 - scenarios only: a validator needs no numpy

    hourly = np.asarray(hourly_profile_w(month, day_type), dtype=np.float64)
    scale = households * household_mean_w / annual_mean_w()
    centres_h = (start_minute + interval_min * (np.arange(n_intervals) + 0.5)) / 60.0
    # Hour h's mean sits at h + 0.5; np.interp with period 24 wraps around midnight.
    values = np.interp(centres_h % 24.0, np.arange(24) + 0.5, hourly, period=24.0)
    return tuple(round(float(v) * scale) for v in values)
