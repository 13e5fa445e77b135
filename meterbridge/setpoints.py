"""What each device should do now, from the chain's committed schedule decisions (ADR 0028).

Pure: decisions (as the node's API gives them) and a time in, the charger's limits or the
inverter's setpoint out; the controller (:mod:`meterbridge.devices`) does the I/O.

A decision names each live request's owner, device and the meter that measures it (issue 14
item 3).  A charger configured with its meter follows the EV rates of the requests that name
that meter, so two chargers of one owner each get their own vehicle's rate; one configured
without a meter follows the sum of its owner's EV rates, as before requests named meters.  An
inverter does the same with Battery rates.  Which meter a device follows (its config's, the
chain's link, or none) is :mod:`meterbridge.device_meters`'s answer.  An interval
the chain decided without a rate for the device, or did not decide at all, gets the device's
safe value: the chain said nothing about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


class _Entry(Protocol):
    @property
    def owner(self) -> str | None: ...
    @property
    def device(self) -> str | None: ...
    @property
    def rate_w(self) -> int: ...
    @property
    def meter_id(self) -> str | None: ...


class DecisionLike(Protocol):
    """``api.models.Decision`` and ``ScheduleEvent`` both have these."""

    @property
    def interval(self) -> int: ...
    @property
    def start_ms(self) -> int: ...
    @property
    def end_ms(self) -> int: ...
    @property
    def entries(self) -> Sequence[_Entry]: ...


@dataclass(frozen=True, slots=True)
class Period:
    """A limit for [start_ms, end_ms), W; ``scheduled`` is False where it is the safe value."""

    start_ms: int
    end_ms: int
    limit_w: int
    scheduled: bool


@dataclass(frozen=True, slots=True)
class ChargerPlan:
    """The limits of the decided intervals from now on, contiguous, oldest first."""

    periods: tuple[Period, ...]
    #: Intervals in which the chain asked this charger to discharge (OCPP 1.6 cannot).
    discharge_intervals: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.periods


def owner_rate(
    decision: DecisionLike, owner: str, device: str, meter_id: str | None = None
) -> int | None:
    """The sum of ``owner``'s rates for ``device`` in the decision, only of the requests that
    name ``meter_id`` when it is given (None: it has none)."""
    rates = [
        e.rate_w
        for e in decision.entries
        if e.owner == owner and e.device == device and (meter_id is None or e.meter_id == meter_id)
    ]
    return sum(rates) if rates else None


def _current_and_later(decisions: Iterable[DecisionLike], now_ms: int) -> list[DecisionLike]:
    by_interval = {d.interval: d for d in decisions if d.end_ms > now_ms}
    return [by_interval[i] for i in sorted(by_interval)]


def charger_plan(
    decisions: Iterable[DecisionLike],
    owner: str,
    now_ms: int,
    safe_limit_w: int,
    meter_id: str | None = None,
) -> ChargerPlan:
    """The charger's limits for the decided intervals that have not ended.

    A charge rate is the limit; a discharge rate becomes 0 W (the charger must not charge, and
    it cannot be told to discharge) and is reported in ``discharge_intervals``.  A gap between
    decided intervals is filled with the safe limit, so the periods are contiguous as one
    OCPP schedule needs.  With ``meter_id`` only the requests naming that meter count.
    """
    periods: list[Period] = []
    discharge: list[int] = []
    for decision in _current_and_later(decisions, now_ms):
        if periods and periods[-1].end_ms < decision.start_ms:
            periods.append(Period(periods[-1].end_ms, decision.start_ms, safe_limit_w, False))
        rate = owner_rate(decision, owner, "EV", meter_id)
        if rate is None:
            periods.append(Period(decision.start_ms, decision.end_ms, safe_limit_w, False))
            continue
        if rate < 0:
            discharge.append(decision.interval)
        periods.append(Period(decision.start_ms, decision.end_ms, max(0, rate), True))
    return ChargerPlan(tuple(periods), tuple(discharge))


def inverter_setpoint(
    decisions: Iterable[DecisionLike],
    owner: str,
    now_ms: int,
    safe_setpoint_w: int,
    meter_id: str | None = None,
) -> tuple[int, bool]:
    """The inverter's setpoint now (W, import positive) and whether the chain decided it.

    Modbus setpoints take effect when written, so only the interval containing ``now_ms``
    matters; discharge is a negative setpoint, which the register expresses.  With
    ``meter_id`` only the requests naming that meter count.
    """
    for decision in decisions:
        if decision.start_ms <= now_ms < decision.end_ms:
            rate = owner_rate(decision, owner, "Battery", meter_id)
            if rate is not None:
                return rate, True
    return safe_setpoint_w, False
