"""The household's plan for the next slots: a linear programme over grid, battery and EV.

Seed 000 eqs. 2.1-2.20: minimise the cost of the energy bought from the grid (and, here, earn
what is sold) subject to the power balance (2.2/2.11), the state of energy of the battery and
the EV (2.3/2.12), the terminal state equal to the initial one (2.4/2.13), the EV's charge by
its departure (2.14) and the power and energy limits (2.5-2.9, 2.16-2.20).  It is solved with
HiGHS through ``scipy.optimize.linprog``.

What differs from the source, and why (ADR 0037):

* Import and export have their own prices (the chain's retail and feed-in tariffs, or the
  market's expected prices), so a kWh sold is worth less than a kWh bought; both are >= 0.
* Goals are soft: the terminal state of energy, the battery's minimum, the EV's "X kWh by hour
  Y" and serving the load each have a slack variable with a penalty far above any price, so the
  programme is never infeasible (evcc's rule: a plan always exists) and a goal that cannot be
  met shows up in :attr:`Plan.violations` with how much is missing, instead of no plan at all.
* PV may be curtailed (a variable with no value), so an export limit the user set is never a
  contradiction when the battery is full.
* A small wear cost per kWh through the battery or EV keeps the solver from cycling energy for
  nothing (charging and discharging in the same slot).

Sign conventions (also served with every plan): powers are kW averaged over a slot and are
all >= 0 in their own direction: ``import_kw`` from the grid/market into the house,
``export_kw`` out of it; ``net_kw = import_kw - export_kw`` (positive: the house buys).
Battery/EV ``charge_kw`` into the battery, ``discharge_kw`` out of it.  Costs are in mc
(milli-credits); a negative cost is an income.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linprog
from scipy.sparse import coo_array

from gridchain.agent.errors import AgentConfigError

FloatArray = npt.NDArray[np.float64]

#: A penalty is this many times the dearest price of the day per kWh of a missed goal.
GOAL_PENALTY_FACTOR = 10.0
#: Unserved load is the last resort: far dearer than any other missed goal.
UNSERVED_PENALTY_FACTOR = 100.0
#: Below this (kWh) a slack is solver noise, not a violation.
VIOLATION_TOLERANCE_KWH = 1e-6


@dataclass(frozen=True, slots=True)
class Battery:
    """Seed 000 Peer A's BESS by default (text under fig. 2.1): 7.5 kWh, 3.3 kW, 97 %."""

    capacity_kwh: float = 7.5
    soe0_kwh: float = 3.5
    soe_min_kwh: float = 1.5
    soe_max_kwh: float = 6.75
    max_charge_kw: float = 3.3
    max_discharge_kw: float = 3.3
    charge_efficiency: float = 0.97
    discharge_efficiency: float = 0.97


@dataclass(frozen=True, slots=True)
class EV:
    """Seed 000 Peer B's EV by default (table 2.3): 4.096 kWh at 51.2 V, 40 A charge, 75 A
    discharge (2.048 and 3.84 kW).  ``goal_kwh`` more by the end of slot ``deadline_slot``
    (exclusive index into the horizon); it is plugged in during ``available`` slots."""

    capacity_kwh: float = 4.096
    soe0_kwh: float = 1.0
    soe_min_kwh: float = 0.0
    max_charge_kw: float = 2.048
    max_discharge_kw: float = 3.84
    efficiency: float = 0.97
    goal_kwh: float = 0.0
    deadline_slot: int = 0
    available: tuple[bool, ...] = ()
    #: Vehicle-to-grid: may the plan discharge the EV (Peer B supplies the peak in the source)?
    v2g: bool = False


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """One horizon: per-slot forecasts (kW), prices (mc/kWh) and limits."""

    slot_hours: float
    pv_kw: FloatArray
    load_kw: FloatArray
    buy_mc_per_kwh: FloatArray
    sell_mc_per_kwh: FloatArray
    battery: Battery | None = None
    ev: EV | None = None
    #: The most the user lets the agent export (sell) per slot, kW averaged over the slot.
    max_export_kw: float = float("inf")
    #: The grid connection's import limit (eq. 2.8); the source lets it tend to infinity.
    max_import_kw: float = float("inf")
    wear_mc_per_kwh: float = 1.0

    @property
    def slots(self) -> int:
        return len(self.pv_kw)


@dataclass(frozen=True, slots=True)
class Violation:
    """A soft goal the plan does not meet, and by how much."""

    goal: str
    short_kwh: float
    reason: str


@dataclass(frozen=True, slots=True)
class Schedule:
    """A plan's (or the rule-based base case's) per-slot powers, kW."""

    import_kw: FloatArray
    export_kw: FloatArray
    curtail_kw: FloatArray
    battery_charge_kw: FloatArray
    battery_discharge_kw: FloatArray
    battery_soe_kwh: FloatArray
    ev_charge_kw: FloatArray
    ev_discharge_kw: FloatArray
    ev_soe_kwh: FloatArray
    violations: tuple[Violation, ...] = field(default=())

    @property
    def net_kw(self) -> FloatArray:
        return self.import_kw - self.export_kw


def energy_cost_mc(inputs: PlanInputs, schedule: Schedule) -> float:
    """Eq. 2.1 with separate buy and sell prices: what the day's grid exchange costs (mc)."""
    dt = inputs.slot_hours
    bought = float(np.dot(inputs.buy_mc_per_kwh, schedule.import_kw)) * dt
    sold = float(np.dot(inputs.sell_mc_per_kwh, schedule.export_kw)) * dt
    return bought - sold


@dataclass(frozen=True, slots=True)
class Summary:
    """Seed 000 table 2.6's rows for one schedule."""

    total_cost_mc: float
    purchased_kwh: float
    sold_kwh: float
    net_kwh: float
    from_battery_kwh: float
    to_battery_kwh: float
    battery_cycles: float


def summarise(inputs: PlanInputs, schedule: Schedule) -> Summary:
    dt = inputs.slot_hours
    bought = float(schedule.import_kw.sum()) * dt
    sold = float(schedule.export_kw.sum()) * dt
    out = float(schedule.battery_discharge_kw.sum()) * dt
    capacity = inputs.battery.capacity_kwh if inputs.battery else 0.0
    return Summary(
        total_cost_mc=energy_cost_mc(inputs, schedule),
        purchased_kwh=bought,
        sold_kwh=sold,
        net_kwh=bought - sold,
        from_battery_kwh=out,
        to_battery_kwh=float(schedule.battery_charge_kw.sum()) * dt,
        battery_cycles=out / capacity if capacity > 0 else 0.0,
    )


def _check(inputs: PlanInputs) -> None:
    n = inputs.slots
    for name, arr in (
        ("load_kw", inputs.load_kw),
        ("buy_mc_per_kwh", inputs.buy_mc_per_kwh),
        ("sell_mc_per_kwh", inputs.sell_mc_per_kwh),
    ):
        if len(arr) != n:
            raise AgentConfigError(f"{name} has {len(arr)} slots, pv_kw has {n}")
    if n == 0 or inputs.slot_hours <= 0:
        raise AgentConfigError("a plan needs at least one slot of positive length")
    if np.any(inputs.sell_mc_per_kwh > inputs.buy_mc_per_kwh):
        # selling dearer than buying makes the LP unbounded in import+export (an arbitrage
        # loop through the meter); the chain's tariffs forbid it (feed-in <= retail)
        raise AgentConfigError("a slot's sell price is above its buy price")
    ev = inputs.ev
    if ev is not None and len(ev.available) != n:
        raise AgentConfigError(f"the EV's availability has {len(ev.available)} slots, not {n}")


class _Columns:
    """Index bookkeeping: named blocks of variables, per slot or scalar."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.size = 0
        self.block: dict[str, int] = {}

    def add(self, name: str, per_slot: bool = True) -> None:
        self.block[name] = self.size
        self.size += self.slots if per_slot else 1

    def at(self, name: str, t: int = 0) -> int:
        return self.block[name] + t


def optimise(inputs: PlanInputs) -> Schedule:
    """The cheapest schedule with soft goals; never infeasible for consistent inputs."""
    _check(inputs)
    n, dt = inputs.slots, inputs.slot_hours
    bat, ev = inputs.battery, inputs.ev
    top = float(max(inputs.buy_mc_per_kwh.max(), 1.0))
    goal_penalty = GOAL_PENALTY_FACTOR * top
    cols = _Columns(n)
    for name in ("imp", "exp", "curt", "bc", "bd", "soe", "soe_short", "evc", "evd", "ev_soe"):
        cols.add(name)
    cols.add("unmet")
    for name in ("ev_short", "term_lo", "term_hi"):
        cols.add(name, per_slot=False)

    cost = np.zeros(cols.size)
    lower = np.zeros(cols.size)
    upper = np.full(cols.size, np.inf)

    def span(name: str) -> slice:
        return slice(cols.at(name), cols.at(name) + n)

    cost[span("imp")] = inputs.buy_mc_per_kwh * dt
    cost[span("exp")] = -inputs.sell_mc_per_kwh * dt
    upper[span("imp")] = inputs.max_import_kw
    upper[span("exp")] = inputs.max_export_kw
    upper[span("curt")] = inputs.pv_kw
    cost[span("unmet")] = UNSERVED_PENALTY_FACTOR * top * dt
    for name in ("bc", "bd", "evc", "evd"):
        cost[span(name)] = inputs.wear_mc_per_kwh * dt
    cost[span("soe_short")] = goal_penalty
    cost[cols.at("ev_short")] = goal_penalty
    cost[cols.at("term_lo")] = cost[cols.at("term_hi")] = 2.0 * top

    if bat is None:
        for name in ("bc", "bd", "soe", "soe_short"):
            upper[span(name)] = 0.0
        upper[cols.at("term_lo")] = upper[cols.at("term_hi")] = 0.0
    else:
        upper[span("bc")] = bat.max_charge_kw
        upper[span("bd")] = bat.max_discharge_kw
        upper[span("soe")] = bat.soe_max_kwh
        upper[span("soe_short")] = bat.soe_min_kwh
    if ev is None:
        for name in ("evc", "evd", "ev_soe"):
            upper[span(name)] = 0.0
        upper[cols.at("ev_short")] = 0.0
    else:
        plugged = np.asarray(ev.available, dtype=np.float64)
        upper[span("evc")] = ev.max_charge_kw * plugged
        upper[span("evd")] = ev.max_discharge_kw * plugged if ev.v2g else 0.0
        lower[span("ev_soe")] = ev.soe_min_kwh
        upper[span("ev_soe")] = ev.capacity_kwh

    rows: list[int] = []
    cidx: list[int] = []
    vals: list[float] = []
    rhs_eq: list[float] = []
    ub_rows: list[int] = []
    ub_cols: list[int] = []
    ub_vals: list[float] = []
    rhs_ub: list[float] = []

    def eq(terms: Sequence[tuple[int, float]], rhs: float) -> None:
        r = len(rhs_eq)
        for c, v in terms:
            rows.append(r)
            cidx.append(c)
            vals.append(v)
        rhs_eq.append(rhs)

    def le(terms: Sequence[tuple[int, float]], rhs: float) -> None:
        r = len(rhs_ub)
        for c, v in terms:
            ub_rows.append(r)
            ub_cols.append(c)
            ub_vals.append(v)
        rhs_ub.append(rhs)

    for t in range(n):
        # (2.2) import + PV used + discharges + unserved = load + charges + export
        eq(
            [
                (cols.at("imp", t), 1.0),
                (cols.at("exp", t), -1.0),
                (cols.at("curt", t), -1.0),
                (cols.at("bd", t), 1.0),
                (cols.at("bc", t), -1.0),
                (cols.at("evd", t), 1.0),
                (cols.at("evc", t), -1.0),
                (cols.at("unmet", t), 1.0),
            ],
            float(inputs.load_kw[t] - inputs.pv_kw[t]),
        )
    if bat is not None:
        for t in range(n):
            # (2.3) SOE_t = SOE_{t-1} + (eta_c * P_bc - P_bd / eta_d) * dt
            terms = [
                (cols.at("soe", t), 1.0),
                (cols.at("bc", t), -bat.charge_efficiency * dt),
                (cols.at("bd", t), dt / bat.discharge_efficiency),
            ]
            if t > 0:
                terms.append((cols.at("soe", t - 1), -1.0))
            eq(terms, bat.soe0_kwh if t == 0 else 0.0)
            # (2.9) SOE_t >= SOE_min, softly
            le([(cols.at("soe", t), -1.0), (cols.at("soe_short", t), -1.0)], -bat.soe_min_kwh)
        # (2.4) SOE_T = SOE_0, softly
        eq(
            [
                (cols.at("soe", n - 1), 1.0),
                (cols.at("term_hi"), -1.0),
                (cols.at("term_lo"), 1.0),
            ],
            bat.soe0_kwh,
        )
    goal_soe = 0.0
    if ev is not None:
        for t in range(n):
            terms = [
                (cols.at("ev_soe", t), 1.0),
                (cols.at("evc", t), -ev.efficiency * dt),
                (cols.at("evd", t), dt / ev.efficiency),
            ]
            if t > 0:
                terms.append((cols.at("ev_soe", t - 1), -1.0))
            eq(terms, ev.soe0_kwh if t == 0 else 0.0)
        if ev.goal_kwh > 0 and ev.deadline_slot > 0:
            # (2.14) "X kWh by hour Y", softly: SOE at the deadline + shortfall >= SOE_0 + X
            goal_soe = min(ev.soe0_kwh + ev.goal_kwh, ev.capacity_kwh)
            last = min(ev.deadline_slot, n) - 1
            le([(cols.at("ev_soe", last), -1.0), (cols.at("ev_short"), -1.0)], -goal_soe)
    # an initial state below the minimum (or above the maximum) must not make the LP infeasible
    if bat is not None and bat.soe0_kwh > bat.soe_max_kwh:
        upper[span("soe")] = max(bat.soe_max_kwh, bat.soe0_kwh)
    if ev is not None and ev.soe0_kwh < ev.soe_min_kwh:
        lower[span("ev_soe")] = 0.0

    a_eq = coo_array((vals, (rows, cidx)), shape=(len(rhs_eq), cols.size)).tocsr()
    a_ub = coo_array((ub_vals, (ub_rows, ub_cols)), shape=(len(rhs_ub), cols.size)).tocsr()
    # scipy-stubs declare only dense arguments; linprog passes sparse ones to HiGHS as they are
    solve: Any = linprog
    result = solve(
        cost,
        A_ub=a_ub if rhs_ub else None,
        b_ub=np.asarray(rhs_ub) if rhs_ub else None,
        A_eq=a_eq,
        b_eq=np.asarray(rhs_eq),
        bounds=np.column_stack([lower, upper]),
        method="highs",
    )
    if result.status != 0 or result.x is None:
        # Every goal has a slack and every bound admits zero, so this is a solver failure,
        # not an infeasible household: report it as the bug it is.
        raise RuntimeError(f"HiGHS did not solve the plan: {result.message}")
    x: FloatArray = np.asarray(result.x, dtype=np.float64)

    def get(name: str) -> FloatArray:
        return np.clip(x[span(name)], 0.0, None)

    violations: list[Violation] = []
    if ev is not None and (short := float(x[cols.at("ev_short")])) > VIOLATION_TOLERANCE_KWH:
        violations.append(
            Violation(
                "ev_energy",
                short,
                f"the EV reaches {goal_soe - short:.3f} of {goal_soe:.3f} kWh by slot "
                f"{ev.deadline_slot}: not enough plugged-in slots, charge power or capacity",
            )
        )
    if ev is not None and ev.soe0_kwh + ev.goal_kwh > ev.capacity_kwh + VIOLATION_TOLERANCE_KWH:
        violations.append(
            Violation(
                "ev_energy",
                ev.soe0_kwh + ev.goal_kwh - ev.capacity_kwh,
                f"{ev.goal_kwh:.3f} kWh more does not fit in a {ev.capacity_kwh:.3f} kWh battery "
                f"holding {ev.soe0_kwh:.3f} kWh; planned to full",
            )
        )
    if bat is not None:
        low = float(x[cols.at("term_lo")]) + float(x[cols.at("term_hi")])
        if low > VIOLATION_TOLERANCE_KWH:
            violations.append(
                Violation(
                    "battery_terminal",
                    low,
                    "the battery ends the horizon away from its initial state of energy",
                )
            )
        short = float(get("soe_short").max())
        if short > VIOLATION_TOLERANCE_KWH:
            violations.append(
                Violation(
                    "battery_minimum",
                    short,
                    "the battery starts (or must go) below its minimum state of energy",
                )
            )
    unmet = float(get("unmet").sum()) * dt
    if unmet > VIOLATION_TOLERANCE_KWH:
        violations.append(
            Violation("load", unmet, "the import limit is below the load the PV cannot cover")
        )
    return Schedule(
        import_kw=get("imp"),
        export_kw=get("exp"),
        curtail_kw=get("curt"),
        battery_charge_kw=get("bc"),
        battery_discharge_kw=get("bd"),
        battery_soe_kwh=x[span("soe")].copy() if bat else np.zeros(n),
        ev_charge_kw=get("evc"),
        ev_discharge_kw=get("evd"),
        ev_soe_kwh=x[span("ev_soe")].copy() if ev else np.zeros(n),
        violations=tuple(violations),
    )


def base_case(inputs: PlanInputs) -> Schedule:
    """Seed 000 sec 2.7.1's rule, which ignores prices.

    PV serves the load first; a surplus charges the battery up to its maximum and the rest is
    exported; a deficit is served by the battery down to its minimum and the rest is imported.
    An EV charges at full power from the first plugged-in slot until its goal is met (charging
    as soon as it is plugged in is what a household without a plan does).
    """
    _check(inputs)
    n, dt = inputs.slots, inputs.slot_hours
    bat, ev = inputs.battery, inputs.ev
    z = {k: np.zeros(n) for k in ("imp", "exp", "curt", "bc", "bd", "soe", "evc", "ev_soe")}
    soe = bat.soe0_kwh if bat else 0.0
    ev_soe = ev.soe0_kwh if ev else 0.0
    ev_target = min(ev.soe0_kwh + ev.goal_kwh, ev.capacity_kwh) if ev else 0.0
    for t in range(n):
        ev_kw = 0.0
        if ev is not None and ev.available[t] and ev_soe < ev_target:
            ev_kw = min(ev.max_charge_kw, (ev_target - ev_soe) / (ev.efficiency * dt))
            ev_soe += ev_kw * ev.efficiency * dt
        surplus = float(inputs.pv_kw[t] - inputs.load_kw[t]) - ev_kw
        if bat is not None and surplus > 0:
            room = max(bat.soe_max_kwh - soe, 0.0) / (bat.charge_efficiency * dt)
            charge = min(surplus, bat.max_charge_kw, room)
            soe += charge * bat.charge_efficiency * dt
            z["bc"][t] = charge
            surplus -= charge
        elif bat is not None and surplus < 0:
            room = max(soe - bat.soe_min_kwh, 0.0) * bat.discharge_efficiency / dt
            discharge = min(-surplus, bat.max_discharge_kw, room)
            soe -= discharge * dt / bat.discharge_efficiency
            z["bd"][t] = discharge
            surplus += discharge
        z["exp"][t] = min(max(surplus, 0.0), inputs.max_export_kw)
        z["curt"][t] = max(surplus, 0.0) - z["exp"][t]
        z["imp"][t] = max(-surplus, 0.0)
        z["soe"][t], z["evc"][t], z["ev_soe"][t] = soe, ev_kw, ev_soe
    return Schedule(
        import_kw=z["imp"],
        export_kw=z["exp"],
        curtail_kw=z["curt"],
        battery_charge_kw=z["bc"],
        battery_discharge_kw=z["bd"],
        battery_soe_kwh=z["soe"],
        ev_charge_kw=z["evc"],
        ev_discharge_kw=np.zeros(n),
        ev_soe_kwh=z["ev_soe"],
    )
