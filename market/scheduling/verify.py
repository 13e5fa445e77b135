"""Integer verification of schedules and the benefit value: the consensus-critical part.

A proposer solves with floating point, rounds to integer W and puts the rates in a block; every
validator then runs the functions here.  They use Python integers only (no floats, no numpy), so
the verdict and the benefit are bit-identical on x86 servers and ARM peer devices, and a
validator never needs to re-solve anything to agree.

Energy is kept in W·min: a rate of ``p`` W held for one interval of ``d`` minutes moves ``p*d``
W·min, and a request of ``e`` Wh needs ``60*e`` W·min.  Both sides are integers, so "has it been
delivered" is an exact comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

from gridchain.market.scheduling.errors import (
    DeadlineUnreachableError,
    EnergyExceededError,
    NegativeRateError,
    RateAboveMaxError,
    RateOutsideWindowError,
    ScheduleShapeError,
)
from gridchain.market.scheduling.model import CDRequest, Kind

#: The benefit is ``BENEFIT_SCALE // (1 + ramp cost in W^2)``: a reciprocal as in the source's
#: ePoB (lambda is the reciprocal of the objective), scaled so that integer division keeps about
#: twelve significant digits for realistic costs (up to ~1e18 W^2) instead of collapsing to 0.
BENEFIT_SCALE = 10**30


def required_units(request: CDRequest, interval_min: int) -> int:
    """Sum of per-interval rates (W) a request needs: ceil(60 * energy_wh / interval_min).

    For a charge request this is exactly what must be delivered (a full schedule delivers this
    many W-intervals, which is the requested energy rounded up by less than one W-interval).
    """
    return -((-60 * request.energy_wh) // interval_min)


def offered_units(request: CDRequest, interval_min: int) -> int:
    """Most W-intervals a discharge request may give: floor(60 * energy_wh / interval_min)."""
    return (60 * request.energy_wh) // interval_min


def unit_cap(request: CDRequest, interval_min: int) -> int:
    """The most W-intervals a request may move in total, whatever its direction."""
    if request.kind is Kind.CHARGE:
        return required_units(request, interval_min)
    return offered_units(request, interval_min)


def _check_int(value: object, what: str, request_id: int | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ScheduleShapeError(f"{what} must be an int, got {type(value).__name__}", request_id)
    return value


def check_schedule(
    requests: Sequence[CDRequest],
    rates_w: Sequence[Sequence[int]],
    *,
    interval_min: int,
    first_interval: int = 0,
    delivered_units: Sequence[int] | None = None,
) -> None:
    """Raise a :class:`ScheduleViolationError` subclass if the schedule breaks a rule; return None.

    ``rates_w[i]`` holds request ``i``'s rates for intervals ``first_interval`` onward (every row
    the same length), so a block that carries only the next interval passes rows of length one.
    ``delivered_units[i]`` is what request ``i`` already received before ``first_interval`` (sum
    of its earlier rates, from the chain); omitted means nothing yet.

    Rules, in the order they are checked for each request (sorted by id, so the first violation
    reported does not depend on the order of the rows):
    every rate is a non-negative int; it is zero outside the request's window; it does not exceed
    the request's maximum rate; the total so far does not exceed the request (charge) or the
    offer (discharge); a charge request can still be completed by its departure at its maximum
    rate from the end of the covered span.
    """
    _check_int(interval_min, "interval_min", None)
    if interval_min <= 0:
        raise ScheduleShapeError("interval_min must be positive")
    _check_int(first_interval, "first_interval", None)
    if first_interval < 0:
        raise ScheduleShapeError("first_interval must not be negative")
    if len(rates_w) != len(requests):
        raise ScheduleShapeError(f"{len(rates_w)} rows of rates for {len(requests)} requests")
    if delivered_units is not None and len(delivered_units) != len(requests):
        raise ScheduleShapeError("delivered_units does not match the requests")
    width = len(rates_w[0]) if rates_w else 0
    span_end = first_interval + width
    order = sorted(range(len(requests)), key=lambda i: requests[i].request_id)
    for i in order:
        request = requests[i]
        rid = request.request_id
        row = rates_w[i]
        if len(row) != width:
            raise ScheduleShapeError("rows of rates have different lengths", rid)
        before = 0 if delivered_units is None else _check_int(delivered_units[i], "delivered", rid)
        if before < 0:
            raise ScheduleShapeError("delivered units must not be negative", rid)
        total = before
        for offset, raw in enumerate(row):
            rate = _check_int(raw, "rate", rid)
            interval = first_interval + offset
            if rate < 0:
                raise NegativeRateError(f"request {rid}: rate {rate} W at {interval}", rid)
            if rate == 0:
                continue
            if not request.arrival <= interval < request.departure:
                raise RateOutsideWindowError(
                    f"request {rid}: {rate} W at interval {interval}, window is "
                    f"[{request.arrival}, {request.departure})",
                    rid,
                )
            if rate > request.max_rate_w:
                raise RateAboveMaxError(
                    f"request {rid}: {rate} W at {interval} exceeds {request.max_rate_w} W", rid
                )
            total += rate
        cap = unit_cap(request, interval_min)
        if total > cap:
            raise EnergyExceededError(
                f"request {rid}: {total} W-intervals scheduled, at most {cap} allowed", rid
            )
        if request.kind is Kind.CHARGE:
            left = max(0, request.departure - max(request.arrival, span_end))
            if cap - total > request.max_rate_w * left:
                raise DeadlineUnreachableError(
                    f"request {rid}: {cap - total} W-intervals still due, at most "
                    f"{request.max_rate_w * left} possible before departure {request.departure}",
                    rid,
                )


def net_load_w(
    base_load_w: Sequence[int],
    requests: Sequence[CDRequest],
    rates_w: Sequence[Sequence[int]],
) -> list[int]:
    """Community load per interval: base plus charging minus discharging (W, integers).

    ``base_load_w`` and every row of ``rates_w`` cover the same intervals.
    """
    load = [_check_int(v, "base load", None) for v in base_load_w]
    if len(rates_w) != len(requests):
        raise ScheduleShapeError(f"{len(rates_w)} rows of rates for {len(requests)} requests")
    for request, row in zip(requests, rates_w, strict=True):
        if len(row) != len(load):
            raise ScheduleShapeError("rates and base load cover different intervals")
        sign = 1 if request.kind is Kind.CHARGE else -1
        for k, rate in enumerate(row):
            if rate:
                load[k] += sign * _check_int(rate, "rate", request.request_id)
    return load


def ramp_cost_w2(load_w: Sequence[int], previous_load_w: int | None = None) -> int:
    """Sum of squared changes between consecutive intervals (eq. 6.4 in integers, W^2).

    ``previous_load_w`` is the realised load just before the first interval; when given, the
    step into the first interval counts too, which is what makes a one-interval block's benefit
    meaningful.
    """
    cost = 0
    prev = previous_load_w
    for raw in load_w:
        value = _check_int(raw, "load", None)
        if prev is not None:
            cost += (value - prev) * (value - prev)
        prev = value
    return cost


def benefit(
    base_load_w: Sequence[int],
    requests: Sequence[CDRequest],
    rates_w: Sequence[Sequence[int]],
    *,
    previous_load_w: int | None = None,
) -> int:
    """The integer benefit of a schedule: higher for a flatter community load.

    ``BENEFIT_SCALE // (1 + ramp cost)`` over the intervals the schedule covers.  It is positive,
    so benefits of blocks can be summed along a chain as PoB does, and it is monotone: a schedule
    with a smaller ramp cost never gets a smaller benefit.
    """
    load = net_load_w(base_load_w, requests, rates_w)
    return BENEFIT_SCALE // (1 + ramp_cost_w2(load, previous_load_w))
