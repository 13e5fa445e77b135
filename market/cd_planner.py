"""The proposer's side of scheduling: rates for the interval a block decides.

The scheduler genesis names (``params.scheduler``) runs here on the live requests the chain
holds: ``uncontrolled`` charges every vehicle at full rate from the moment it is connected and
discharges none; ``online`` re-solves the flattening QP over the connected vehicles (source
ch. 6, problem (6)) and applies its first interval; ``epob`` is online with the speed-up c of
Table 6-A (genesis ``epob_speedup_milli``).  The solvers use floating point, so different
hardware may round differently; that is allowed, because validators never re-solve: they check
the integer rules and recompute the benefit (market/cd_schedule.py).  Whatever a solver
answers is clamped into the validators' bounds, and a solver failure falls back to the
uncontrolled rates, so an honest proposer always builds a valid block.  The base load is the
forecast every validator recomputes (:mod:`market.base_load`); with a transformer capacity in
genesis the rates are then brought under it (:func:`under_capacity`, ADR 0036).
"""

from __future__ import annotations

import contextlib

from gridchain.genesis.schema import Genesis
from gridchain.market.base_load import forecast_base_load
from gridchain.market.cd_requests import CDRecord
from gridchain.market.cd_schedule import DueInterval
from gridchain.market.scheduling.errors import SchedulingError
from gridchain.market.scheduling.model import CDRequest, Kind, Scenario
from gridchain.market.state import StateReader
from gridchain.protocol.block import ScheduleEntry


def plan(genesis: Genesis, due: DueInterval, state: StateReader) -> tuple[ScheduleEntry, ...]:
    """The schedule section for ``due``: one entry per live request, in id order."""
    if not due.live:
        return ()
    records = [record for _, record in due.live]
    bounds = list(due.bounds)
    magnitudes = _uncontrolled(records, bounds)
    name = genesis.params.scheduler
    if name != "uncontrolled":
        speedup = genesis.params.epob_speedup_milli / 1000 if name == "epob" else None
        # On a solver failure keep the uncontrolled rates: valid, if not flat.
        with contextlib.suppress(SchedulingError):
            magnitudes = _online(genesis, due, state, speedup)
    signed = []
    for record, (low, high), value in zip(records, bounds, magnitudes, strict=True):
        rate = min(max(value, low), high)
        signed.append(rate if record.is_charge else -rate)
    signed = under_capacity(due, signed)
    return tuple(ScheduleEntry(rid, rate) for (rid, _), rate in zip(due.live, signed, strict=True))


def under_capacity(due: DueInterval, signed: list[int]) -> list[int]:
    """Signed rates within their bounds with the interval's load at or under the transformer
    capacity: discharges raised to their most, then charges lowered to their least, in id
    order, until the load fits; the least load itself when nothing fits (ADR 0036)."""
    if due.capacity_w is None:
        return signed
    excess = due.base_load_w + sum(signed) - due.capacity_w
    if excess <= 0:
        return signed
    out = list(signed)
    records = [record for _, record in due.live]
    for discharging in (True, False):
        for i, (record, (low, high)) in enumerate(zip(records, due.bounds, strict=True)):
            if excess <= 0 or record.is_charge == discharging:
                continue
            # The rate may go down by this much: to -high for a discharge, low for a charge.
            room = out[i] + high if discharging else out[i] - low
            cut = min(room, excess)
            out[i] -= cut
            excess -= cut
    return out


def _uncontrolled(records: list[CDRecord], bounds: list[tuple[int, int]]) -> list[int]:
    return [high if r.is_charge else low for r, (low, high) in zip(records, bounds, strict=True)]


def _online(
    genesis: Genesis, due: DueInterval, state: StateReader, speedup: float | None
) -> list[int]:
    j = due.interval
    # One interval past the last departure, as the library's online scheduler plans: the step
    # from the last charging interval back to the base load is part of eq. 6.4's cost.  The
    # later intervals are planned on the same forecast rule as the one decided now.
    horizon = max(record.end_interval for _, record in due.live) - j + 1
    base = (
        due.base_load_w,
        *(forecast_base_load(genesis, state, j + t) for t in range(1, horizon)),
    )
    requests = tuple(
        CDRequest(
            request_id=i,
            kind=Kind.CHARGE if record.is_charge else Kind.DISCHARGE,
            arrival=0,
            departure=record.end_interval - j,
            energy_wh=record.energy_wh,
            max_rate_w=record.max_rate_w,
        )
        for i, (_, record) in enumerate(due.live)
    )
    scenario = Scenario(
        name=f"interval-{j}",
        interval_min=genesis.params.schedule_interval_minutes,
        base_load_w=base,
        requests=requests,
    )
    # The solver's numpy, scipy and clarabel (about 30 MiB resident) are loaded by the first
    # plan that needs them, not by every validator's start (ADR 0054).
    from gridchain.market.scheduling.optimal import Online  # noqa: PLC0415

    scheduler = Online(speedup=speedup)
    residual = [record.residual_units for _, record in due.live]
    return scheduler.first_interval(scenario, residual, due.previous_load_w)
