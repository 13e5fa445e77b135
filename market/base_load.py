"""The base load a schedule plans on: a forecast from the community's metered load (ADR 0036).

Issue 14 item 4.  The scheduler flattens base load + C&D rates, so the base load must be what
the community's meters will show, not only a profile fixed in genesis.  Two parts, both
consensus-critical, integer-only and a function of the state alone (every validator recomputes
them; a block planned on another base load gets another benefit and another decision, so it
is refused: :func:`market.cd_schedule.apply_decision`):

* **History.** Once an interval ``j`` has ended and the readings' grace period is over (start
  of ``j + 1`` + ``settlement_grace_ms`` <= block time, as for C&D settlement), the first block
  past that point measures the community's load in ``j``: the import registers of every
  ``Loadmeter`` meter over [start of j, start of j + 1] (the reader contract settlement uses),
  as a mean power in W.  It is kept under ``cdl:`` + interval only if every load meter had
  readings covering the window (a partly measured total would under-forecast); a gap is simply
  not a sample.  Only ``base_load_history_days`` days of these totals are kept, so this compact
  history (one small entry per interval) is what the forecast reads: the raw readings it came
  from are free to be pruned (market/pruning.py).
* **Forecast.** The base load of ``j`` is the median of the kept totals of the same interval
  of the day (``j - d * D`` for d = 1..N, D intervals a day) once at least
  ``base_load_min_days`` of them exist (the mean of the two middle ones, rounded down, for an
  even count); before that it is the genesis profile (:func:`market.cd_schedule.base_load_at`).
  A median of days, not a mean, so that one unusual day (a holiday, a meter outage the
  register caught up on) does not move tomorrow's plan.

A cursor (``meta:cdload``: one past the newest measured interval) makes each interval measured
once.  A block measures at most the ``LOOKBACK`` latest due intervals from the cursor on (an
interval whose readings came later than that, or that stayed unmeasured while a later one was
measured, is a gap), and writes only when it kept a total, so a chain whose load meters send
nothing keeps its state as it was.
"""

from __future__ import annotations

from functools import lru_cache

from gridchain.genesis.schema import Genesis
from gridchain.market.cd_requests import IntervalClock
from gridchain.market.meters import iter_meters
from gridchain.market.scheduling.loadprofiles import DayType, hourly_profile_w
from gridchain.market.settlement import Metering, meters_metering
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.meter import MeterType
from gridchain.protocol.tx import Side

LOAD_HISTORY_PREFIX = b"cdl:"
LOAD_CURSOR_KEY = b"meta:cdload"
HOUR_MS = 3_600_000
DAY_MINUTES = 1440
#: How many of the latest due intervals a block still measures: readings that arrive late (up
#: to an hour of 10-minute intervals) still make a sample, and a block's work stays bounded.
LOOKBACK = 6


@lru_cache(maxsize=16)
def _profile(month: int) -> tuple[tuple[int, ...], int]:
    hourly = hourly_profile_w(month, DayType.WEEKDAY)
    # The scale divides by the annual mean of the weekday table over all months and hours.
    annual_sum = sum(sum(hourly_profile_w(m, DayType.WEEKDAY)) for m in range(1, 13))
    return hourly, annual_sum


def base_load_at(genesis: Genesis, interval: int) -> int:
    """The genesis profile's base load (W) in ``interval``: the embedded apartment profile
    scaled by genesis, in integers (interpolated at the interval's centre like
    :func:`market.scheduling.loadprofiles.base_load_w`), identical on every validator."""
    p = genesis.params
    hourly, annual_sum = _profile(p.base_load_month)
    minutes = p.schedule_interval_minutes
    start_minute = genesis.genesis_time_ms // 60_000
    # Interval centre in half-minutes of the day; hour h's mean sits at h + 0.5 h.
    centre = (2 * start_minute + minutes * (2 * interval + 1)) % 2880
    x = (centre - 60) % 2880
    h0, frac = divmod(x, 120)
    mixed = hourly[h0] * (120 - frac) + hourly[(h0 + 1) % 24] * frac
    # value = mixed / 120 * households * mean / (annual_sum / 288), rounded half up.
    num = mixed * p.base_load_households * p.base_load_household_mean_w * 288
    den = 120 * annual_sum
    return (2 * num + den) // (2 * den)


def intervals_per_day(genesis: Genesis) -> int:
    """D: how many intervals stand for one day of energy (the profile's period)."""
    return max(1, DAY_MINUTES // genesis.params.schedule_interval_minutes)


def load_key(interval: int) -> bytes:
    return LOAD_HISTORY_PREFIX + interval.to_bytes(8, "big")


def metered_load(state: StateReader, interval: int) -> int | None:
    """The community's measured mean load (W) in ``interval``, if it was measured and kept."""
    raw = state.get(load_key(interval))
    return None if raw is None else int.from_bytes(raw, "big")


def history_samples(genesis: Genesis, state: StateReader, interval: int) -> list[int]:
    """The kept totals of the same interval of the day on the previous N days, newest first."""
    day = intervals_per_day(genesis)
    out = []
    for d in range(1, genesis.params.base_load_history_days + 1):
        earlier = interval - d * day
        if earlier < 0:
            break
        found = metered_load(state, earlier)
        if found is not None:
            out.append(found)
    return out


def integer_median(values: list[int]) -> int:
    """The median; for an even count the mean of the two middle values, rounded down."""
    ordered = sorted(values)
    n = len(ordered)
    if n % 2:
        return ordered[n // 2]
    return (ordered[n // 2 - 1] + ordered[n // 2]) // 2


def forecast_base_load(genesis: Genesis, state: StateReader, interval: int) -> int:
    """The base load (W) a schedule for ``interval`` plans on (module text)."""
    samples = history_samples(genesis, state, interval)
    if len(samples) < genesis.params.base_load_min_days:
        return base_load_at(genesis, interval)
    return integer_median(samples)


def record_metered_load_due(genesis: Genesis, view: Overlay, timestamp_ms: int) -> None:
    """Measure the intervals whose window + grace is over and keep N days of totals."""
    clock = IntervalClock.of(genesis)
    # The last interval due: start of (last + 1) + grace <= block time.
    since = timestamp_ms - genesis.params.settlement_grace_ms - genesis.genesis_time_ms
    last = since // clock.interval_ms - 1
    raw = view.get(LOAD_CURSOR_KEY)
    cursor = max(0 if raw is None else int.from_bytes(raw, "big"), last - LOOKBACK + 1)
    if last < cursor:
        return  # nothing due: most blocks stop here, after one read
    load_meters = [m.meter_id for m in iter_meters(view) if m.meter_type == MeterType.LOADMETER]
    if not load_meters:
        return
    kept = genesis.params.base_load_history_days * intervals_per_day(genesis)
    newest = None
    for interval in range(cursor, last + 1):
        watts = _measure(clock, view, load_meters, interval)
        if watts is None:
            continue
        view.put(load_key(interval), watts.to_bytes(8, "big"))
        if interval >= kept:
            view.delete(load_key(interval - kept))
        newest = interval
    if newest is not None:
        # Only a block that measured something writes (a chain whose load meters send nothing
        # keeps its state as it was).  Unmeasured intervals before the newest measured one are
        # gaps; those after it are tried again by the next blocks, within the lookback.
        view.put(LOAD_CURSOR_KEY, (newest + 1).to_bytes(8, "big"))


def _measure(
    clock: IntervalClock, view: Overlay, meter_ids: list[str], interval: int
) -> int | None:
    start, end = clock.start_ms(interval), clock.start_ms(interval + 1)
    found = meters_metering(view, meter_ids, int(Side.BUY), net=False, start_ms=start, end_ms=end)
    if found.metering != Metering.COMPLETE:
        return None
    return (2 * found.metered_wh * HOUR_MS + clock.interval_ms) // (2 * clock.interval_ms)
