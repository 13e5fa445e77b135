"""The agent's two figures: forecast error on held-out days, and its plan's cost vs the base case.

Data: ``--days`` (30, as the source) simulated days of one household (bench/agent_days.py:
the meter simulator's household with weather and weekends), plus the held-out days after
them.  The source's split: the first ``days - 7`` days train, the last 7 are held out.

1. Forecast error (seed 000 sec 2.3).  On each held-out day, PV and load are forecast a day
   ahead by the agent's regression and by persistence (agent/forecast.py); the table shows the
   normalised RMSE (RMSE / mean actual) and the MAPE (intervals >= 10 % of peak) of each.
2. Plan cost (seed 000 table 2.6, "the same day under ToU").  Seed 000 Peer A: 3 kW PV, the
   7.5 kWh BESS of the text under fig. 2.1.  On each held-out day:

   * *base case*: the rule of sec 2.7.1 on the actual day (PV first, surplus to the battery,
     then export; deficit from the battery, then import), blind to prices;
   * *agent*: the LP (agent/plan.py) solved on the agent's *forecast* of that day; its battery
     schedule is then played against the *actual* PV and load, the grid taking the difference;
   * *deterministic*: the LP on the actual day (the source's deterministic case: no forecast
     error, a bound on what a plan can earn).

   Under two pricings of the chain's default genesis tariffs: *chain ToU* (import at retail,
   export at the feed-in tariff) and *net metering* (one ToU price both ways, as table 2.6's
   cost C_t * P_t^g).  The rows are table 2.6's, summed over the held-out days.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from gridchain.agent import forecast as fc
from gridchain.agent.plan import (
    Battery,
    PlanInputs,
    Schedule,
    Summary,
    base_case,
    optimise,
    summarise,
)
from gridchain.bench.agent_days import FloatArray, simulated_days, tou_prices
from gridchain.bench.conditions import conditions
from gridchain.genesis.schema import ChainParams
from gridchain.meterbridge.simulator import Household

PER_DAY = 96
SLOT_HOURS = 24 / PER_DAY
#: 2026-06-01, a Monday: a summer month, so the PV matters.
FIRST_DAY = 20605
#: Seed 000 Peer A's PV (sec 2.2.1).
PEER_A = Household(pv_peak_kw=3.0)


def forecast_errors(series: list[FloatArray], first_day: int, weekly: bool) -> dict[str, Any]:
    """Both models' errors, averaged over the seeds, and on how many seeds each won."""
    runs = [fc.evaluate(values, first_day, weekly=weekly) for values in series]

    def mean(model: str) -> dict[str, float]:
        rows = [asdict(getattr(r, model)) for r in runs]
        return {k: float(np.mean([row[k] for row in rows])) for k in rows[0]}

    return {
        "train_days": runs[0].train_days,
        "test_days": runs[0].test_days,
        "regression": mean("regression"),
        "persistence": mean("persistence"),
        "regression_better_nrmse": sum(r.regression.nrmse < r.persistence.nrmse for r in runs),
        "seeds": len(runs),
    }


def played(actual: PlanInputs, forecast: PlanInputs, planned: Schedule) -> Schedule:
    """A plan carried out on the actual day by the battery's local controller.

    The battery runs the planned power, and also absorbs the forecast's error where its power
    and state of energy allow (more load or less PV than forecast: it discharges more, or
    charges less; the opposite: it charges more), as a home battery with a setpoint does; the
    grid takes what is left.
    """
    bat = actual.battery
    assert bat is not None
    dt = actual.slot_hours
    n = actual.slots
    bc, bd, soe_out = np.zeros(n), np.zeros(n), np.zeros(n)
    soe = bat.soe0_kwh
    error = (actual.load_kw - actual.pv_kw) - (forecast.load_kw - forecast.pv_kw)
    for t in range(n):
        want = float(planned.battery_charge_kw[t] - planned.battery_discharge_kw[t] - error[t])
        if want >= 0:
            room = max(bat.soe_max_kwh - soe, 0.0) / (bat.charge_efficiency * dt)
            bc[t] = min(want, bat.max_charge_kw, room)
            soe += bc[t] * bat.charge_efficiency * dt
        else:
            room = max(soe - bat.soe_min_kwh, 0.0) * bat.discharge_efficiency / dt
            bd[t] = min(-want, bat.max_discharge_kw, room)
            soe -= bd[t] * dt / bat.discharge_efficiency
        soe_out[t] = soe
    net = actual.load_kw - actual.pv_kw + bc - bd
    return replace(
        planned,
        import_kw=np.maximum(net, 0.0),
        export_kw=np.maximum(-net, 0.0),
        battery_charge_kw=bc,
        battery_discharge_kw=bd,
        battery_soe_kwh=soe_out,
    )


def _add(total: dict[str, float], summary: Summary) -> None:
    for k, v in asdict(summary).items():
        total[k] = total.get(k, 0.0) + float(v)


def plan_costs(
    pv: FloatArray, load: FloatArray, first_day: int, test_days: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Table 2.6's rows per case, over consecutive held-out days.

    The battery's state of energy carries from one day to the next in each case (a plan
    starts from where the battery is and, eq. 2.4, ends there); what the battery holds at the
    end against the start is shown, and valued at the mean retail price in the last row, since
    a rule that ends the week with an emptier battery has spent energy it did not pay for.
    """
    tariffs = [
        (t.start_hour, t.end_hour, t.retail_mc_per_kwh, t.feed_in_mc_per_kwh)
        for t in ChainParams().tariffs
    ]
    retail, feed_in = tou_prices(PER_DAY, tariffs)
    pricings = {"chain_tou": (retail, feed_in), "net_metering": (retail, retail)}
    days = len(pv)
    start_soe = Battery().soe0_kwh
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, (buy, sell) in pricings.items():
        cases = ("base_case", "agent", "deterministic")
        totals: dict[str, dict[str, float]] = {c: {} for c in cases}
        soe = dict.fromkeys(cases, start_soe)
        for d in range(days - test_days, days):
            pv_fc, _ = fc.forecast_next_day(pv[:d], first_day, weekly=False)
            load_fc, _ = fc.forecast_next_day(load[:d], first_day, weekly=True)

            actual = PlanInputs(
                slot_hours=SLOT_HOURS,
                pv_kw=pv[d],
                load_kw=load[d],
                buy_mc_per_kwh=buy,
                sell_mc_per_kwh=sell,
            )
            base_in, agent_in, det_in = (
                replace(actual, battery=replace(Battery(), soe0_kwh=soe[c])) for c in cases
            )
            forecast = replace(agent_in, pv_kw=pv_fc, load_kw=load_fc)
            runs = {
                "base_case": (base_in, base_case(base_in)),
                "agent": (agent_in, played(agent_in, forecast, optimise(forecast))),
                "deterministic": (det_in, optimise(det_in)),
            }
            for case, (inputs, schedule) in runs.items():
                _add(totals[case], summarise(inputs, schedule))
                soe[case] = float(schedule.battery_soe_kwh[-1])
        mean_retail = float(np.mean(buy))
        for case in cases:
            change = soe[case] - start_soe
            totals[case]["battery_change_kwh"] = change
            totals[case]["cost_with_battery_change_mc"] = (
                totals[case]["total_cost_mc"] - change * mean_retail
            )
        out[name] = totals
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridchain bench agent", description=__doc__)
    parser.add_argument("--days", type=int, default=30, help="simulated days (source: 30)")
    parser.add_argument("--test-days", type=int, default=fc.TEST_DAYS, help="held out (7)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument(
        "--seeds", type=int, default=10, help="households simulated (seeds seed..seed+N-1)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sims = [
        simulated_days(seed=seed, days=args.days, first_day=FIRST_DAY, household=PEER_A)
        for seed in range(args.seed, args.seed + args.seeds)
    ]
    plans = [plan_costs(s.pv_kw, s.load_kw, FIRST_DAY, args.test_days) for s in sims]
    summed = {
        pricing: {
            case: {k: sum(p[pricing][case][k] for p in plans) for k in plans[0][pricing][case]}
            for case in plans[0][pricing]
        }
        for pricing in plans[0]
    }
    report = {
        "days": args.days,
        "test_days": args.test_days,
        "seeds": [args.seed, args.seed + args.seeds - 1],
        "forecast": {
            "pv": forecast_errors([s.pv_kw for s in sims], FIRST_DAY, weekly=False),
            "load": forecast_errors([s.load_kw for s in sims], FIRST_DAY, weekly=True),
        },
        "plan": summed,
        "conditions": conditions(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"gridchain bench agent: {args.seeds} households x {args.days} simulated days "
        f"(seeds {args.seed}..{args.seed + args.seeds - 1}), last {args.test_days} held out"
    )
    print(f"{'forecast':<8} {'model':<12} {'nRMSE':>7} {'MAPE':>7} {'MAE kW':>7} {'wins':>6}")
    for quantity, result in report["forecast"].items():
        for model in ("regression", "persistence"):
            e = result[model]
            wins = result["regression_better_nrmse"]
            won = wins if model == "regression" else result["seeds"] - wins
            print(
                f"{quantity:<8} {model:<12} {e['nrmse']:>7.3f} {100 * e['mape']:>6.1f}% "
                f"{e['mae_kw']:>7.3f} {won:>3}/{result['seeds']}"
            )
    rows = (
        ("total_cost_mc", "Total cost (credits)", 1e-3),
        ("purchased_kwh", "Electricity purchased (kWh)", 1.0),
        ("sold_kwh", "Electricity sold (kWh)", 1.0),
        ("net_kwh", "Net electricity (kWh)", 1.0),
        ("from_battery_kwh", "Energy from BESS (kWh)", 1.0),
        ("to_battery_kwh", "Energy to BESS (kWh)", 1.0),
        ("battery_cycles", "BESS cycles", 1.0),
        ("battery_change_kwh", "BESS end - start (kWh)", 1.0),
        ("cost_with_battery_change_mc", "Cost, BESS change at retail", 1e-3),
    )
    for pricing, cases in report["plan"].items():
        print(f"\nplan over {args.test_days} held-out days x {args.seeds} households, {pricing}")
        print(f"{'':<28} {'base case':>10} {'agent':>10} {'determ.':>10}")
        for key, label, scale in rows:
            values = [cases[c][key] * scale for c in ("base_case", "agent", "deterministic")]
            print(f"{label:<28} " + " ".join(f"{v:>10.2f}" for v in values))
    return 0
