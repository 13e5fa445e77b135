"""The proposer's side of scheduling: rates for the interval a block decides.

The scheduler genesis names (``params.scheduler``) runs here on the live requests the chain
holds: ``uncontrolled`` charges every vehicle at full rate from the moment it is connected and
discharges none; ``online`` re-solves the flattening QP over the connected vehicles (source
ch. 6, problem (6)) and applies its first interval; ``epob`` is online with the speed-up c of
Table 6-A (genesis ``epob_speedup_milli``).  The solvers use floating point, so different
hardware may round differently; that is allowed, because validators never re-solve: they check
the integer rules and recompute the benefit (market/cd_schedule.py).  Whatever a solver
answers is clamped into the validators' bounds, and a solver failure falls back to the
uncontrolled rates, so an honest proposer always builds a valid block.
"""

from __future__ import annotations

import contextlib

from gridchain.genesis.schema import Genesis
from gridchain.market.cd_requests import CDRecord
from gridchain.market.cd_schedule import DueInterval, base_load_at
from gridchain.market.scheduling.errors import SchedulingError
from gridchain.market.scheduling.model import CDRequest, Kind, Scenario
from gridchain.market.scheduling.optimal import Online
from gridchain.protocol.block import ScheduleEntry


def plan(genesis: Genesis, due: DueInterval) -> tuple[ScheduleEntry, ...]:
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
            magnitudes = _online(genesis, due, speedup)
    entries = []
    for (rid, record), (low, high), value in zip(due.live, bounds, magnitudes, strict=True):
        rate = min(max(value, low), high)
        entries.append(ScheduleEntry(rid, rate if record.is_charge else -rate))
    return tuple(entries)


def _uncontrolled(records: list[CDRecord], bounds: list[tuple[int, int]]) -> list[int]:
    return [high if r.is_charge else low for r, (low, high) in zip(records, bounds, strict=True)]


def _online(genesis: Genesis, due: DueInterval, speedup: float | None) -> list[int]:
    j = due.interval
    # One interval past the last departure, as the library's online scheduler plans: the step
    # from the last charging interval back to the base load is part of eq. 6.4's cost.
    horizon = max(record.end_interval for _, record in due.live) - j + 1
    base = tuple(base_load_at(genesis, j + t) for t in range(horizon))
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
    scheduler = Online(speedup=speedup)
    residual = [record.residual_units for _, record in due.live]
    return scheduler.first_interval(scenario, residual, due.previous_load_w)
