"""EV charge/discharge scheduling: the source's schedulers, the offline optimum, compared.

What it measures, on seeded scenarios of market.scheduling.scenarios:

1. the standard scenario (ch. 6: 200 households, 100 EVs, 144 intervals of 10 min): every
   scheduler x the four PFL forms (eqs. 3.11, 4.4, 5.7, 6.4) x its solve time, as means over
   ``--table-instances`` seeds;
2. each chapter's own comparison on its own preset (ch. 3, 4, 5, 6), beside the source's
   figures;
3. the empirical competitive ratio (eq. 6.4 cost of the integer schedule over the continuous
   offline optimum) of online and ePoB over ``--instances`` seeds, maximum and mean;
4. the same ratio for Optimal Available and its sped-up qOA in the speed-scaling setting the
   4 and 2.39 bounds are about (no base load, objective sum of squared EV power);
5. a sweep of ePoB's factor c;
6. the offline solve time for 100 EVs x 144 intervals and for 1,000 EVs x 144 intervals,
   measured in this process after the parallel work is done;
7. a PNG of one day's load profile per scheduler (like the source's figs. 4.4 and 6.6) and of
   the c sweep, written to ``--out``.

``--compare-solvers`` instead times the offline QP with each installed solver (Clarabel, OSQP,
HiGHS), the measurement behind docs/adr/0006-scheduling-solver.md.

Seeds: instance k of a study uses seed ``--seed + k``; the GA uses the instance seed too.
Instances run in ``--workers`` processes (default: all CPUs), so per-call solve times in the
table are measured while the other workers run; the offline timing goal is measured alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from gridchain.bench.conditions import conditions, median
from gridchain.market.scheduling.adbev import AdBEV
from gridchain.market.scheduling.base import Scheduler, caps, net_load
from gridchain.market.scheduling.genetic import Genetic
from gridchain.market.scheduling.heuristics import Conventional, Uncontrolled
from gridchain.market.scheduling.metrics import all_pfl, pf_cube_root
from gridchain.market.scheduling.model import Kind, Scenario, Schedule
from gridchain.market.scheduling.optimal import Offline, Online, epob
from gridchain.market.scheduling.qp import Objective, build_qp, solve_qp
from gridchain.market.scheduling.registry import DEFAULT_EPOB_C
from gridchain.market.scheduling.scenarios import (
    PRESETS,
    STANDARD,
    ScenarioParams,
    generate,
    scaled,
)
from gridchain.market.scheduling.verify import check_schedule, net_load_w, ramp_cost_w2
from gridchain.protocol.errors import GridchainError

SWEEP_C = (1.0, 1.05, 1.1, 1.25, 1.5, 2.0, 2.39)
QOA_C = 1.5  # q = 2 - 1/alpha for alpha = 2, the speed-up of qOA

# Source figures quoted in the comparison (seed 001).
SOURCE = {
    "ch3_eq3_11": {"none": 0.56, "conventional": 0.20, "ga": 0.03},
    "ch4_pfl": {"none": 1.15, "ga": 0.85, "adbev": 0.63},
    "ch5_pf_cube_root": {"none": 48.5, "pebt": 32.4, "change_percent": -33.2},
    "ch6": {"epob_better_than_adbev_percent": 3.5, "claimed_competitive_ratio": 2.39},
    "theory": {"oa_bound_alpha2": 4.0},
}


def _table_schedulers(seed: int, c: float, ga_generations: int) -> list[Scheduler]:
    return [
        Uncontrolled(),
        Conventional(),
        Genetic(seed=seed, generations=ga_generations),
        AdBEV(),
        Offline(),
        Offline(Objective.LEVEL, name="offline-valley"),
        Online(),
        epob(c),
    ]


def _run(scheduler: Scheduler, scenario: Scenario) -> tuple[Schedule, float]:
    start = time.perf_counter()
    schedule = scheduler.schedule(scenario)
    elapsed = time.perf_counter() - start
    # Every schedule the bench reports is one validators would accept.
    check_schedule(scenario.requests, schedule.rates_w, interval_min=scenario.interval_min)
    return schedule, elapsed


def _metrics(scenario: Scenario, schedule: Schedule) -> dict[str, float]:
    load = net_load(scenario, np.asarray(schedule.rates_w, dtype=np.int64))
    out = all_pfl(load, scenario.interval_min)
    out["peak_kw"] = float(load.max()) / 1000.0
    return out


def _standard(evs: int) -> ScenarioParams:
    """The standard scenario, or the same community grown or shrunk to ``evs`` vehicles."""
    return STANDARD if evs == STANDARD.evs else scaled(STANDARD, evs)


def _table_task(job: tuple[int, float, int, int]) -> dict[str, Any]:
    """One seed of the standard scenario through the schedulers of the table."""
    seed, c, ga_generations, evs = job
    scenario = generate(_standard(evs), seed)
    rows: dict[str, Any] = {}
    loads: dict[str, list[float]] = {"base": [v / 1000 for v in scenario.base_load_w]}
    for scheduler in _table_schedulers(seed, c, ga_generations):
        schedule, elapsed = _run(scheduler, scenario)
        rows[scheduler.name] = {**_metrics(scenario, schedule), "seconds": elapsed}
        load = net_load(scenario, np.asarray(schedule.rates_w, dtype=np.int64))
        loads[scheduler.name] = [float(v) / 1000 for v in load]
    return {"seed": seed, "rows": rows, "loads": loads, "start_minute": scenario.start_minute}


def _chapter_task(job: tuple[str, int, int]) -> dict[str, Any]:
    """The schedulers a chapter compares, on that chapter's preset."""
    preset, seed, ga_generations = job
    scenario = generate(PRESETS[preset], seed)
    names: dict[str, Scheduler] = {"none": Uncontrolled()}
    if preset == "ch3":
        names |= {"conventional": Conventional(), "ga": Genetic(seed, generations=ga_generations)}
    elif preset == "ch4":
        names |= {"ga": Genetic(seed, generations=ga_generations), "adbev": AdBEV()}
    else:
        names |= {"online": Online(), "offline": Offline()}
    return {name: _metrics(scenario, _run(s, scenario)[0]) for name, s in names.items()}


def _cost(scenario: Scenario, schedule: Schedule) -> int:
    return ramp_cost_w2(net_load_w(scenario.base_load_w, scenario.requests, schedule.rates_w))


def _cr_task(job: tuple[int, float, int]) -> dict[str, float]:
    """Competitive ratios on one standard instance: eq. 6.4 cost over the offline optimum."""
    seed, c, evs = job
    scenario = generate(_standard(evs), seed)
    optimum = Offline().solve(scenario).objective_w2
    online = _cost(scenario, _run(Online(), scenario)[0])
    # With c = 1 ePoB's schedule is the online schedule by construction (a unit test checks
    # it), so it is not computed twice.
    sped = online if c == 1.0 else _cost(scenario, _run(epob(c), scenario)[0])
    adbev = _cost(scenario, _run(AdBEV(), scenario)[0])
    return {
        "online": online / optimum,
        "epob": sped / optimum,
        "adbev": adbev / optimum,
        "epob_vs_adbev": (adbev - sped) / adbev,
    }


def _speed_scaling(seed: int, evs: int) -> Scenario:
    """The standard instance as a speed-scaling problem: charge requests only, no base load."""
    scenario = generate(_standard(evs), seed)
    charge = tuple(r for r in scenario.requests if r.kind is Kind.CHARGE)
    return replace(scenario.with_requests(charge), base_load_w=(0,) * scenario.n_intervals)


def _theory_task(job: tuple[int, int]) -> dict[str, float]:
    scenario = _speed_scaling(*job)
    optimum = Offline(Objective.LEVEL).solve(scenario).objective_w2

    def energy(schedule: Schedule) -> float:
        load = np.asarray(net_load_w(scenario.base_load_w, scenario.requests, schedule.rates_w))
        return float(np.square(load.astype(np.float64)).sum())

    oa = energy(_run(Online(Objective.LEVEL, name="oa"), scenario)[0])
    qoa = energy(_run(epob(QOA_C, Objective.LEVEL), scenario)[0])
    return {"oa": oa / optimum, "qoa": qoa / optimum}


def _sweep_task(job: tuple[int, float, int]) -> float:
    seed, c, evs = job
    scenario = generate(_standard(evs), seed)
    optimum = Offline().solve(scenario).objective_w2
    return _cost(scenario, _run(epob(c), scenario)[0]) / optimum


def _offline_timing(seed: int, repeats: int, sizes: list[int]) -> list[dict[str, Any]]:
    out = []
    for evs in sizes:
        times = repeats if evs <= 100 else max(1, repeats // 2)
        scenario = generate(scaled(STANDARD, evs), seed)
        seconds = []
        for _ in range(times):
            start = time.perf_counter()
            Offline().solve(scenario)
            seconds.append(time.perf_counter() - start)
        out.append(
            {
                "evs": evs,
                "households": scaled(STANDARD, evs).households,
                "intervals": scenario.n_intervals,
                "repeats": times,
                "median_s": median(seconds),
                "min_s": min(seconds),
                "goal_s": 1.0 if evs <= 100 else 10.0,
            }
        )
    return out


def _summary(values: Iterable[float]) -> dict[str, float]:
    items = list(values)
    return {"mean": statistics.fmean(items), "max": max(items), "min": min(items), "n": len(items)}


def _mean_rows(tasks: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    names = list(tasks[0]["rows"])
    keys = list(tasks[0]["rows"][names[0]])
    return {n: {k: statistics.fmean(t["rows"][n][k] for t in tasks) for k in keys} for n in names}


def _chapters(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def mean(preset: str, name: str, key: str) -> float:
        return statistics.fmean(r[name][key] for r in results[preset])

    ch5_none = pf_cube_root(mean("ch5", "none", "eq5_7"))
    ch5_online = pf_cube_root(mean("ch5", "online", "eq5_7"))
    ch5_offline = pf_cube_root(mean("ch5", "offline", "eq5_7"))
    return {
        "ch3_eq3_11": {n: mean("ch3", n, "eq3_11") for n in ("none", "conventional", "ga")},
        "ch4_eq3_11": {n: mean("ch4", n, "eq3_11") for n in ("none", "ga", "adbev")},
        "ch4_eq4_4_kw": {n: mean("ch4", n, "eq4_4") for n in ("none", "ga", "adbev")},
        "ch5_pf_cube_root": {
            "none": ch5_none,
            "online": ch5_online,
            "offline": ch5_offline,
            "online_change_percent": 100 * (ch5_online - ch5_none) / ch5_none,
            "offline_change_percent": 100 * (ch5_offline - ch5_none) / ch5_none,
        },
    }


def _pool_map(workers: int, fn: Callable[[Any], Any], jobs: list[Any]) -> list[Any]:
    if workers <= 1:
        return [fn(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (4 * workers))))


class MissingExtraError(GridchainError):
    """An optional dependency of a benchmark is not installed."""

    code = "missing_extra"


def _require_matplotlib() -> None:
    """Fail before minutes of computing, not at the figure: matplotlib is in the ``bench``
    extra (validators do not install it)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise MissingExtraError(
            "the schedule benchmark draws its figure with matplotlib: "
            "pip install 'gridchain[bench]'"
        )


def _plot(path: Path, day: dict[str, Any], sweep: dict[str, dict[str, float]]) -> None:
    # Imported here: matplotlib is an optional extra (see _require_matplotlib).
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    loads: dict[str, list[float]] = day["loads"]
    hours = (day["start_minute"] / 60 + (np.arange(len(loads["base"])) + 0.5) / 6) % 24
    x = np.arange(len(loads["base"]))
    fig = Figure(figsize=(11, 8.5))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 2))
    top.plot(x, loads["base"], color="black", linewidth=2.2, label="base load (no EV)")
    for name, values in loads.items():
        if name != "base":
            top.plot(x, values, linewidth=1.2, label=name)
    ticks = x[:: max(1, len(x) // 12)]
    top.set_xticks(ticks, [f"{int(hours[k]):02d}:00" for k in ticks])
    top.set_ylabel("community load (kW)")
    top.set_title(f"Standard scenario, seed {day['seed']}: community load per scheduler")
    top.legend(ncol=3, fontsize=8)
    top.grid(alpha=0.3)
    cs = [float(c) for c in sweep]
    bottom.semilogy(cs, [sweep[c]["mean"] for c in sweep], "o-", label="mean")
    bottom.semilogy(cs, [sweep[c]["max"] for c in sweep], "s--", label="max")
    bottom.set_xlabel("ePoB speed-up factor c")
    bottom.set_ylabel("eq. 6.4 cost / offline optimum")
    bottom.set_title("ePoB: S = min(c * sum x, sum U)")
    bottom.legend()
    bottom.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _versions() -> dict[str, str]:
    out = {}
    for name in ("numpy", "scipy", "clarabel", "matplotlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


# --- solver comparison (--compare-solvers) ------------------------------------------------


def _clarabel(problem: Any) -> tuple[str, int, Any]:
    solution = solve_qp(problem, Objective.RAMP)
    return solution.status, solution.iterations, solution.load_w


def _osqp(problem: Any) -> tuple[str, int, Any]:
    # Optional: only this comparison needs OSQP, so it is imported only here.
    import osqp  # type: ignore[import-untyped]  # noqa: PLC0415

    n_zero = problem.n_zero
    upper = problem.b
    lower = np.concatenate([problem.b[:n_zero], np.full(problem.b.size - n_zero, -np.inf)])
    solver = osqp.OSQP()
    solver.setup(
        P=problem.p_matrix,
        q=problem.q,
        A=sp.csc_matrix(problem.a_matrix),
        l=lower,
        u=upper,
        eps_abs=1e-7,
        eps_rel=1e-7,
        max_iter=200_000,
        polishing=True,
        verbose=False,
    )
    result = solver.solve(raise_error=False)
    return str(result.info.status), int(result.info.iter), result.x[problem.n_rates :] * 1000


def _highs(problem: Any, time_limit_s: float) -> tuple[str, int, Any]:
    # Optional: only this comparison needs HiGHS, so it is imported only here.
    import highspy  # noqa: PLC0415

    n = problem.p_matrix.shape[0]
    a = sp.csr_matrix(problem.a_matrix)
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = a.shape[0]
    lp.col_cost_ = problem.q
    lp.col_lower_ = np.full(n, -inf)
    lp.col_upper_ = np.full(n, inf)
    lp.row_lower_ = np.concatenate(
        [problem.b[: problem.n_zero], np.full(a.shape[0] - problem.n_zero, -inf)]
    )
    lp.row_upper_ = problem.b
    csc = sp.csc_matrix(a)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr
    lp.a_matrix_.index_ = csc.indices
    lp.a_matrix_.value_ = csc.data
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", time_limit_s)
    h.passModel(lp)
    lower = sp.csc_matrix(problem.p_matrix.T)
    h.passHessian(
        int(n),
        int(lower.nnz),
        int(highspy.HessianFormat.kTriangular),
        lower.indptr.astype(np.int32),
        lower.indices.astype(np.int32),
        np.asarray(lower.data, dtype=np.float64),
    )
    h.run()
    x = np.asarray(h.getSolution().col_value)
    return str(h.getModelStatus()), int(h.getInfo().qp_iteration_count), x[problem.n_rates :] * 1000


def _scipy(problem: Any, max_iter: int) -> tuple[str, int, Any]:
    """scipy's general constrained minimiser on the same QP (scipy has no dedicated QP solver)."""
    from scipy.optimize import LinearConstraint, minimize  # noqa: PLC0415

    upper_tri = sp.csc_matrix(problem.p_matrix)
    hessian = sp.csr_matrix(upper_tri + upper_tri.T - sp.diags(upper_tri.diagonal()))
    n_zero = problem.n_zero
    lower = np.concatenate([problem.b[:n_zero], np.full(problem.b.size - n_zero, -np.inf)])
    # trust-constr accepts a sparse Hessian callback, which the stubs do not describe.
    minimize_any: Any = minimize
    result = minimize_any(
        lambda z: 0.5 * z @ (hessian @ z) + problem.q @ z,
        np.zeros(hessian.shape[0]),
        jac=lambda z: hessian @ z + problem.q,
        hess=lambda z: hessian,
        method="trust-constr",
        constraints=[LinearConstraint(sp.csr_matrix(problem.a_matrix), lower, problem.b)],
        options={"maxiter": max_iter},
    )
    status = "solved" if result.status in (1, 2) else f"status {result.status}: {result.message}"
    return status, int(result.nit), np.asarray(result.x)[problem.n_rates :] * 1000


def compare_solvers(seed: int, highs_limit_s: float, scipy_max_iter: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for evs in (100, 1000):
        scenario = generate(scaled(STANDARD, evs), seed)
        problem = build_qp(
            base_load_w=scenario.base_load_w,
            start=0,
            requests=scenario.requests,
            residual_units=caps(scenario),
            objective=Objective.RAMP,
        )
        solvers: dict[str, Callable[[Any], tuple[str, int, Any]]] = {
            "clarabel": _clarabel,
            "osqp": _osqp,
            "highs": lambda p: _highs(p, highs_limit_s),
            "scipy": lambda p: _scipy(p, scipy_max_iter),
        }
        for name, solve in solvers.items():
            if evs == 1000 and name in ("highs", "scipy"):
                rows.append({"evs": evs, "solver": name, "status": "skipped (too slow at 100 EVs)"})
                continue
            start = time.perf_counter()
            try:
                status, iterations, load = solve(problem)
            except ImportError:
                rows.append({"evs": evs, "solver": name, "status": "not installed"})
                continue
            elapsed = time.perf_counter() - start
            load = np.asarray(load, dtype=np.float64)
            rows.append(
                {
                    "evs": evs,
                    "variables": int(problem.p_matrix.shape[0]),
                    "solver": name,
                    "status": status,
                    "iterations": iterations,
                    "seconds": elapsed,
                    "objective_kw2": float(np.square(np.diff(load)).sum()) / 1e6,
                }
            )
    return rows


# --- main -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gridchain bench schedule", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--seed", type=int, default=0, help="first seed; instance k uses seed+k")
    p.add_argument("--instances", type=int, default=200, help="instances for competitive ratios")
    p.add_argument("--table-instances", type=int, default=5, help="seeds averaged in tables")
    p.add_argument("--sweep-instances", type=int, default=5, help="seeds per c in the sweep")
    p.add_argument("--theory-instances", type=int, default=10, help="seeds for OA/qOA")
    p.add_argument("--evs", type=int, default=STANDARD.evs, help="EVs of the standard scenario")
    p.add_argument("--c", type=float, default=DEFAULT_EPOB_C, help="ePoB speed-up factor")
    p.add_argument("--ga-generations", type=int, default=300)
    p.add_argument("--timing-repeats", type=int, default=3, help="repeats of the offline timing")
    p.add_argument(
        "--timing-evs",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[100, 1000],
        help="EV counts of the offline timing, comma-separated",
    )
    p.add_argument(
        "--sweep-c",
        type=lambda text: [float(v) for v in text.split(",")],
        default=list(SWEEP_C),
        help="values of c to sweep, comma-separated",
    )
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=Path("schedule-bench.png"), help="PNG path")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--compare-solvers", action="store_true", help="only compare QP solvers")
    p.add_argument("--highs-time-limit", type=float, default=60.0)
    p.add_argument("--scipy-max-iter", type=int, default=50, help="trust-constr iterations")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    _require_matplotlib()
    started = time.perf_counter()
    seeds = [args.seed + k for k in range(max(args.instances, args.table_instances))]
    table_jobs = [(s, args.c, args.ga_generations, args.evs) for s in seeds[: args.table_instances]]
    tables = _pool_map(args.workers, _table_task, table_jobs)
    chapter_jobs = [
        (p, s, args.ga_generations)
        for p in ("ch3", "ch4", "ch5")
        for s in seeds[: args.table_instances]
    ]
    chapter_results = _pool_map(args.workers, _chapter_task, chapter_jobs)
    by_preset: dict[str, list[dict[str, Any]]] = {"ch3": [], "ch4": [], "ch5": []}
    for (preset, _, _), result in zip(chapter_jobs, chapter_results, strict=True):
        by_preset[preset].append(result)
    cr_jobs = [(s, args.c, args.evs) for s in seeds[: args.instances]]
    cr = _pool_map(args.workers, _cr_task, cr_jobs)
    theory_jobs = [(s, args.evs) for s in seeds[: args.theory_instances]]
    theory = _pool_map(args.workers, _theory_task, theory_jobs)
    sweep_jobs = [(s, c, args.evs) for c in args.sweep_c for s in seeds[: args.sweep_instances]]
    sweep_values = _pool_map(args.workers, _sweep_task, sweep_jobs)
    sweep: dict[str, dict[str, float]] = {}
    for c in args.sweep_c:
        sweep[f"{c:g}"] = _summary(
            v for (_, jc, _), v in zip(sweep_jobs, sweep_values, strict=True) if jc == c
        )
    timing = _offline_timing(args.seed, args.timing_repeats, args.timing_evs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _plot(args.out, tables[0], sweep)
    table = _mean_rows(tables)
    epob_name = epob(args.c).name
    ch6 = {
        "eq6_4": {
            n: table[n]["eq6_4"] for n in ("uncontrolled", "adbev", "offline", "online", epob_name)
        },
        "epob_better_than_adbev_percent": 100 * _summary(r["epob_vs_adbev"] for r in cr)["mean"],
    }
    return {
        "conditions": {
            **conditions(),
            **_versions(),
            "workers": args.workers,
            "seeds": f"{args.seed}..{args.seed + len(seeds) - 1}",
            "standard": {
                "households": _standard(args.evs).households,
                "evs": args.evs,
                "intervals": STANDARD.n_intervals,
                "interval_min": STANDARD.interval_min,
                "month": STANDARD.month,
                "day_type": STANDARD.day_type.value,
            },
            "epob_c": args.c,
            "ga_generations": args.ga_generations,
            "table_instances": args.table_instances,
            "instances": args.instances,
            "sweep_instances": args.sweep_instances,
            "theory_instances": args.theory_instances,
        },
        "table": table,
        "chapters": {**_chapters(by_preset), "ch6": ch6},
        "competitive_ratio": {
            "online": _summary(r["online"] for r in cr),
            "epob": _summary(r["epob"] for r in cr),
            "adbev": _summary(r["adbev"] for r in cr),
            "within_10_percent_share": {
                "online": sum(r["online"] <= 1.1 for r in cr) / len(cr),
                "epob": sum(r["epob"] <= 1.1 for r in cr) / len(cr),
            },
        },
        "speed_scaling": {
            "oa": _summary(r["oa"] for r in theory),
            f"qoa_c{QOA_C:g}": _summary(r["qoa"] for r in theory),
        },
        "c_sweep": sweep,
        "offline_timing": timing,
        "source": SOURCE,
        "png": str(args.out.resolve()),
        "elapsed_s": time.perf_counter() - started,
    }


def _print_report(report: dict[str, Any]) -> None:
    cond = report["conditions"]
    std = cond["standard"]
    n_table = cond["table_instances"]
    lines = [
        f"conditions: python {cond['python']} ({cond['implementation']}), {cond['cpus']} CPUs, "
        f"{cond['platform']}, load {cond['load_avg_1m']}",
        f"  numpy {cond['numpy']}, scipy {cond['scipy']}, clarabel {cond['clarabel']}, "
        f"{cond['workers']} worker processes, seeds {cond['seeds']}",
        f"standard scenario: {std['households']} households, {std['evs']} EVs, "
        f"{std['intervals']} x {std['interval_min']} min, month {std['month']} {std['day_type']}",
        f"  ePoB c = {cond['epob_c']:g}; GA {cond['ga_generations']} generations",
        "",
        f"Schedulers on the standard scenario (mean of {n_table} seeds)",
        f"{'scheduler':<16}{'eq3.11':>9}{'eq4.4':>10}{'eq5.7':>11}{'eq6.4':>11}"
        f"{'peak':>8}{'solve':>9}",
        f"{'':<16}{'':>9}{'kW':>10}{'(kW/h)^2':>11}{'kW^2':>11}{'kW':>8}{'s':>9}",
    ]
    for name, row in report["table"].items():
        lines.append(
            f"{name:<16}{row['eq3_11']:>9.3f}{row['eq4_4']:>10.1f}{row['eq5_7']:>11.1f}"
            f"{row['eq6_4']:>11.1f}{row['peak_kw']:>8.1f}{row['seconds']:>9.3f}"
        )
    ch = report["chapters"]
    c3, c4, c44 = ch["ch3_eq3_11"], ch["ch4_eq3_11"], ch["ch4_eq4_4_kw"]
    c5, c6 = ch["ch5_pf_cube_root"], ch["ch6"]
    lines += [
        "",
        f"The source's comparisons, each on its chapter's preset (mean of {n_table} seeds)",
        f"ch3 eq3.11      none {c3['none']:.3f} -> conventional {c3['conventional']:.3f} "
        f"-> GA {c3['ga']:.3f}   (source 0.56 -> 0.20 -> 0.03)",
        f"ch4 eq3.11      none {c4['none']:.3f} -> GA {c4['ga']:.3f} -> AdBEV {c4['adbev']:.3f}"
        "   (source 1.15 -> 0.85 -> 0.63)",
        f"ch4 eq4.4 kW    none {c44['none']:.1f} -> GA {c44['ga']:.1f} -> AdBEV {c44['adbev']:.1f}",
        f"ch5 cbrt(eq5.7) none {c5['none']:.2f} -> online {c5['online']:.2f} "
        f"({c5['online_change_percent']:+.1f} %), offline {c5['offline']:.2f} "
        f"({c5['offline_change_percent']:+.1f} %)   (source 48.5 -> 32.4, -33.2 %)",
        "ch6 eq6.4 kW^2  " + ", ".join(f"{k} {v:.1f}" for k, v in c6["eq6_4"].items()),
        f"ch6 ePoB better than AdBEV by {c6['epob_better_than_adbev_percent']:.1f} % "
        f"(mean over {cond['instances']} seeds; source 3.5 %)",
        "",
        f"Empirical competitive ratio: eq. 6.4 cost / offline optimum, "
        f"{cond['instances']} standard instances",
    ]
    cr = report["competitive_ratio"]
    for name in ("online", "epob", "adbev"):
        s = cr[name]
        lines.append(f"  {name:<8} mean {s['mean']:.4f}  max {s['max']:.4f}  min {s['min']:.4f}")
    share = cr["within_10_percent_share"]
    lines.append(
        f"  within 10 % of the optimum: online {100 * share['online']:.1f} % of instances, "
        f"ePoB {100 * share['epob']:.1f} %"
    )
    lines.append(
        f"Speed-scaling setting (no base load, sum of squared EV power), "
        f"{cond['theory_instances']} instances; OA bound 4, qOA claim 2.39"
    )
    for name, s in report["speed_scaling"].items():
        lines.append(f"  {name:<8} mean {s['mean']:.4f}  max {s['max']:.4f}")
    lines.append(
        f"ePoB c sweep ({cond['sweep_instances']} standard instances): "
        "eq. 6.4 cost / offline optimum"
    )
    for c, s in report["c_sweep"].items():
        lines.append(f"  c = {c:<5} mean {s['mean']:10.4f}  max {s['max']:10.4f}")
    lines.append("Offline solve (build + Clarabel + rounding), measured alone")
    for t in report["offline_timing"]:
        lines.append(
            f"  {t['evs']:>5} EVs x {t['intervals']} intervals: median {t['median_s']:.3f} s, "
            f"min {t['min_s']:.3f} s over {t['repeats']} (goal <= {t['goal_s']:g} s)"
        )
    lines += ["", f"PNG: {report['png']}", f"elapsed: {report['elapsed_s']:.1f} s"]
    print("\n".join(lines))


def _print_solvers(report: dict[str, Any]) -> None:
    print(json.dumps(report["conditions"]))
    for r in report["solvers"]:
        if "seconds" not in r:
            print(f"{r['evs']:>5} EVs {r['solver']:<9} {r['status']}")
            continue
        print(
            f"{r['evs']:>5} EVs ({r['variables']} vars) {r['solver']:<9} {r['seconds']:8.3f} s "
            f"{r['iterations']:>7} it  {r['status']:<28} eq6.4 {r['objective_kw2']:.6f} kW^2"
        )


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.compare_solvers:
        rows = compare_solvers(args.seed, args.highs_time_limit, args.scipy_max_iter)
        report: dict[str, Any] = {"conditions": {**conditions(), **_versions()}, "solvers": rows}
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            _print_solvers(report)
        return 0
    counts = (args.instances, args.table_instances, args.sweep_instances, args.theory_instances)
    if min(*counts, args.evs, *args.timing_evs) < 1:
        print("every instance count and EV count must be at least 1", file=sys.stderr)
        return 2
    if args.c < 1.0:
        print(
            "--c must be at least 1 (ePoB speeds the online plan up, never down)", file=sys.stderr
        )
        return 2
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
