"""A block's schedule section: which rates it may carry, what it does, and its benefit.

Consensus-critical and integer-only, so validators on any hardware agree bit for bit.  The
first block whose time lies in interval k decides interval j = k + 1, if no block did yet: its
schedule lists every request live in j (open, connected in j, something left to move), in id
order, with a rate in W (negative = discharge).  Later blocks of interval k carry no schedule.
An interval in which no block landed is never decided: its vehicles get no setpoint (rate 0).

Rules for each entry (checked in this order, the first broken one refuses the block):
the sign matches the request's kind; the magnitude is 0 in an interval whose C&D price is
outside the request's limit (above it for a charge, below it for a discharge: ADR 0030,
:mod:`market.cd_pricing`); otherwise it is at most the request's maximum rate and what it has
left, and a charge request gets at least what it must take now to still finish by its
departure at full rate in the later intervals its limit allows (never more than its maximum
rate, so the rule can always be met even after intervals without a block).

Grid limit (ADR 0036): with a transformer capacity in genesis, the interval's load (base load +
the rates) must stay at or under it whenever the requests' least load (every charge at its
least rate, every discharge at its most) does; when even that is over the capacity, the
schedule must be exactly that least load and its decision says ``over_capacity`` (checked
after the entries' own rules; :class:`GridLimitError`).

The benefit (DESIGN 7) of a block that decides j is ``BENEFIT_SCALE // (1 + (L_j - L_prev)^2)``
with L_j = base load of j plus the scheduled rates and L_prev the load planned for j - 1 (its
base load when j - 1 was not decided): the reciprocal of eq. 6.4's term for that step, as
:func:`market.scheduling.verify.benefit` computes it, on a scale that fits the header's I64.  A
block that decides nothing has benefit 0.  The base load is the forecast every validator
computes from the community's metered load (:mod:`market.base_load`, ADR 0036), the genesis
profile while that history is short; a block planned on another base load claims another
benefit (``benefit_mismatch``) or writes another decision (so another state root), and is
refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Annotated

from gridchain.genesis.schema import Genesis
from gridchain.market.base_load import forecast_base_load
from gridchain.market.cd_pricing import CDPrices
from gridchain.market.cd_requests import (
    CDRecord,
    CDStatus,
    IntervalClock,
    ScheduleHead,
    close_request,
    get_head,
    open_requests,
    put_head,
    put_request,
)
from gridchain.market.chain_params import LATEST, params_at
from gridchain.market.errors import BenefitMismatchError, GridLimitError, ScheduleRejectedError
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.block import MAX_BLOCK_TXS, ScheduleEntry
from gridchain.protocol.encoding import I64, U8, U64, Record, Size, decode, register

#: The header's benefit is an I64, so the chain's scale is 10**18 rather than the library's
#: 10**30: a perfectly flat step scores 10**18, a 1 kW step 10**12, a 1 MW step 10**6.
BENEFIT_SCALE = 10**18
DECISION_PREFIX = b"cdd:"
#: Decisions kept in the state for /v1/schedule (older ones are in their blocks).
KEPT_DECISIONS = 1008  # a week of 10-minute intervals


@register(0x6B)
@dataclass(frozen=True, slots=True)
class Decision(Record):
    """What the chain decided for one interval: the setpoints, the load and the benefit."""

    interval: U64
    height: U64
    base_load_w: I64
    load_w: I64
    benefit: U64
    entries: Annotated[tuple[ScheduleEntry, ...], Size(0, MAX_BLOCK_TXS)]
    #: The transformer capacity it was held to (0: none in genesis) and whether even the least
    #: load the requests allowed was over it (ADR 0036).
    capacity_w: U64 = 0
    over_capacity: U8 = 0


@dataclass(frozen=True, slots=True)
class DueInterval:
    """What a block at some time must decide: interval ``j`` for these live requests."""

    interval: int
    previous_load_w: int
    live: tuple[tuple[bytes, CDRecord], ...]
    #: open requests whose window ended before the interval (intervals nobody decided)
    ended: tuple[tuple[bytes, CDRecord], ...] = ()
    #: (least, most) magnitude in W each live request may get (:func:`rate_bounds`), same order
    bounds: tuple[tuple[int, int], ...] = ()
    #: the base load forecast for the interval (:func:`market.base_load.forecast_base_load`)
    base_load_w: int = 0
    #: the transformer capacity in W (None: no grid limit)
    capacity_w: int | None = None

    def least_load_w(self) -> int:
        """The lowest load the requests allow: charges at their least, discharges at their
        most."""
        signed = (
            low if record.is_charge else -high
            for (_, record), (low, high) in zip(self.live, self.bounds, strict=True)
        )
        return self.base_load_w + sum(signed)

    @property
    def over_capacity(self) -> bool:
        """Even the least load is over the transformer capacity."""
        return self.capacity_w is not None and self.least_load_w() > self.capacity_w


def decision_key(interval: int) -> bytes:
    return DECISION_PREFIX + interval.to_bytes(8, "big")


def get_decision(state: StateReader, interval: int) -> Decision | None:
    raw = state.get(decision_key(interval))
    return None if raw is None else decode(raw, Decision)


def latest_decisions(state: StateReader, count: int) -> list[Decision]:
    """The newest ``count`` decisions kept in the state, newest first."""
    head = get_head(state)
    out: list[Decision] = []
    interval = head.next_interval - 1
    while interval >= 0 and len(out) < count and head.next_interval - interval <= KEPT_DECISIONS:
        found = get_decision(state, interval)
        if found is not None:
            out.append(found)
        interval -= 1
    return out


# --- what is due, and its check ------------------------------------------------------------


def due_interval(
    genesis: Genesis, state: StateReader, timestamp_ms: int, height: int | None = None
) -> DueInterval | None:
    """The interval a block at ``timestamp_ms`` decides on this state, or None.

    The rate bounds use the tariffs of block ``height`` (market/chain_params.py); None takes
    the last ones scheduled, for a caller that asks only whether an interval is due.
    """
    clock = IntervalClock.of(genesis)
    head = get_head(state)
    j = clock.interval_at(timestamp_ms) + 1
    if j < head.next_interval:
        return None
    if head.next_interval == j and j > 0:
        previous = head.last_load_w
    else:
        previous = forecast_base_load(genesis, state, max(j - 1, 0))
    live: list[tuple[bytes, CDRecord]] = []
    ended: list[tuple[bytes, CDRecord]] = []
    for rid, rec in open_requests(state):
        if rec.live_at(j):
            live.append((rid, rec))
        elif rec.end_interval <= j:
            ended.append((rid, rec))
    params = params_at(state, genesis, LATEST if height is None else height)
    prices = CDPrices(clock, params.tariffs)
    bounds = tuple(rate_bounds(rec, j, prices) for _, rec in live)
    base = forecast_base_load(genesis, state, j)
    capacity = genesis.params.transformer_capacity_w
    return DueInterval(j, previous, tuple(live), tuple(ended), bounds, base, capacity)


def rate_bounds(record: CDRecord, interval: int, prices: CDPrices) -> tuple[int, int]:
    """Least and most magnitude (W) a live request may get in ``interval``: nothing where the
    interval's price is outside its limit, and a charge request at least what it cannot get
    later at full rate in the intervals its limit allows."""
    limit = record.limit_price_mc_per_kwh
    if not prices.allows(record.is_charge, limit, interval):
        return 0, 0
    residual = record.residual_units
    high = min(record.max_rate_w, residual)
    if not record.is_charge:
        return 0, high
    later = record.max_rate_w * prices.usable(True, limit, interval + 1, record.end_interval)
    return min(high, max(0, residual - later)), high


def schedule_benefit(base_w: int, rates_w: Sequence[int], previous_load_w: int) -> tuple[int, int]:
    """The interval's load and the block's benefit for signed rates."""
    load = base_w + sum(rates_w)
    step = load - previous_load_w
    return load, BENEFIT_SCALE // (1 + step * step)


def check_entries(due: DueInterval, entries: Sequence[ScheduleEntry]) -> None:
    """Raise :class:`ScheduleRejectedError` unless ``entries`` is a valid schedule for ``due``."""
    expected = [rid for rid, _ in due.live]
    got = [e.request_id for e in entries]
    if got != expected:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        detail = (
            f"missing {missing[0].hex()[:16]}"
            if missing
            else f"not live {extra[0].hex()[:16]}"
            if extra
            else "not in id order"
        )
        raise ScheduleRejectedError(
            f"schedule for interval {due.interval} must list the {len(expected)} live "
            f"requests in id order: {detail}"
        )
    for (rid, record), entry, (low, high) in zip(due.live, entries, due.bounds, strict=True):
        rate = entry.rate_w
        magnitude = rate if record.is_charge else -rate
        if magnitude < 0:
            raise ScheduleRejectedError(
                f"request {rid.hex()[:16]}: rate {rate} W has the wrong sign for its kind"
            )
        if magnitude > high:
            raise ScheduleRejectedError(
                f"request {rid.hex()[:16]}: {magnitude} W exceeds {high} W "
                f"(maximum rate {record.max_rate_w} W, {record.residual_units} left, "
                f"limit price {record.limit_price_mc_per_kwh} mc/kWh)"
            )
        if magnitude < low:
            raise ScheduleRejectedError(
                f"request {rid.hex()[:16]}: {magnitude} W leaves it unable to finish by "
                f"departure; at least {low} W is due now"
            )
    check_grid_limit(due, entries)


def check_grid_limit(due: DueInterval, entries: Sequence[ScheduleEntry]) -> None:
    """Raise :class:`GridLimitError` unless the entries keep the load under the transformer
    capacity, or (when the requests allow no load under it) are at the least load."""
    if due.capacity_w is None:
        return
    load = due.base_load_w + sum(e.rate_w for e in entries)
    least = due.least_load_w()
    if least > due.capacity_w:
        if load != least:
            raise GridLimitError(
                f"interval {due.interval}: even the least load {least} W is over the capacity "
                f"{due.capacity_w} W, so the schedule must be at it, not at {load} W"
            )
    elif load > due.capacity_w:
        raise GridLimitError(
            f"interval {due.interval}: load {load} W (base {due.base_load_w} W) is over the "
            f"transformer capacity {due.capacity_w} W; the requests allow {least} W"
        )


def apply_decision(
    genesis: Genesis,
    view: Overlay,
    *,
    height: int,
    timestamp_ms: int,
    entries: Sequence[ScheduleEntry],
    claimed_benefit: int | None,
) -> tuple[Decision | None, int]:
    """Check a block's schedule section and apply it; return the decision and the benefit.

    ``claimed_benefit`` None means "compute it" (the proposer); otherwise it must equal the
    recomputed value.  Raises without writing anything the caller keeps on a refusal (the
    caller's overlay is dropped with the block).
    """
    due = due_interval(genesis, view, timestamp_ms, height)
    if due is not None and not due.live:
        _close_ended(view, due)
        due = None  # nothing to decide: no state written for intervals without vehicles
    if due is None:
        if entries:
            raise ScheduleRejectedError("a block that decides no interval carries no schedule")
        if claimed_benefit not in (None, 0):
            raise BenefitMismatchError(
                f"the block decides no interval, so its benefit is 0, not {claimed_benefit}"
            )
        return None, 0
    check_entries(due, entries)
    base = due.base_load_w
    load, benefit = schedule_benefit(base, [e.rate_w for e in entries], due.previous_load_w)
    if claimed_benefit is not None and claimed_benefit != benefit:
        raise BenefitMismatchError(
            f"header claims benefit {claimed_benefit}, the schedule gives {benefit}"
        )
    _close_ended(view, due)
    for (rid, record), entry in zip(due.live, entries, strict=True):
        moved = abs(entry.rate_w)
        updated = replace(record, delivered_units=record.delivered_units + moved)
        if updated.residual_units == 0:
            close_request(view, rid, updated, CDStatus.COMPLETE, due.interval)
        elif due.interval + 1 >= record.end_interval:
            close_request(view, rid, updated, CDStatus.ENDED, due.interval)
        else:
            put_request(view, rid, updated)
    head = get_head(view)
    put_head(view, ScheduleHead(due.interval + 1, load, head.open_requests))
    decision = Decision(
        due.interval,
        height,
        base,
        load,
        benefit,
        tuple(entries),
        capacity_w=due.capacity_w or 0,
        over_capacity=int(due.over_capacity),
    )
    view.put(decision_key(due.interval), decision.encode())
    if due.interval >= KEPT_DECISIONS:
        view.delete(decision_key(due.interval - KEPT_DECISIONS))
    return decision, benefit


def _close_ended(view: Overlay, due: DueInterval) -> None:
    """Close open requests whose window ended before the interval (intervals nobody decided);
    ``due`` found them in the same scan of the open set as the live ones."""
    for rid, rec in due.ended:
        status = CDStatus.COMPLETE if rec.residual_units == 0 else CDStatus.ENDED
        close_request(view, rid, rec, status, due.interval)
