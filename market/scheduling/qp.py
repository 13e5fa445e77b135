"""The convex QP behind the offline optimum, the online scheduler and ePoB.

Problem (4)/(6) of the source in discrete time: choose a rate for every request and every
interval of its window (box 0..U), deliver each charge request's residual energy exactly, take no
more than each discharge request offers, keep the load under the transformer limit if there is
one (constraint 3.16), and minimise either

- ``RAMP``: ``sum_k (L_k - L_{k-1})^2`` (eq. 6.4; the source's objective), with the step from
  the realised load before the first interval included when it is known, or
- ``LEVEL``: ``sum_k L_k^2``, whose optimum is valley filling (the classical load-flattening
  objective, and the one the Optimal Available competitive-ratio theory is about),

where ``L_k`` is base load plus charging minus discharging.  The loads are variables of their
own with one equality row per interval, which keeps every matrix sparse (the Hessian is
tridiagonal in the loads and zero in the rates), so the problem grows linearly with
requests x window length.

The solver is Clarabel, an interior-point method, chosen by measurement over OSQP and HiGHS
(docs/adr/0006-scheduling-solver.md): it is the fastest of the three here and, unlike a
first-order method, returns an optimum accurate enough to compare schedulers against it.
Anything but a solved status raises :class:`SolverError` (or :class:`InfeasibleProblemError`).
Internally powers are in kW so the problem is well scaled.  Validators never run this module.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import scipy.sparse as sp

from gridchain.market.scheduling.errors import InfeasibleProblemError, SolverError
from gridchain.market.scheduling.model import CDRequest, Kind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Objective(enum.Enum):
    RAMP = "ramp"
    LEVEL = "level"


@dataclass(frozen=True, slots=True)
class QPProblem:
    """``min 1/2 z'Pz + q'z  s.t.  A z + s = b`` (P = ``p_matrix``, A = ``a_matrix``), the first
    ``n_zero`` slacks zero and the rest non-negative, with z = (rates, loads).  P is upper
    triangular.

    ``var_request``/``var_interval`` say which request and which interval (relative to
    ``start``) each rate variable belongs to; the last ``n_intervals`` variables are the loads.
    """

    p_matrix: sp.csc_matrix
    q: FloatArray
    a_matrix: sp.csc_matrix
    b: FloatArray
    n_zero: int
    var_request: IntArray
    var_interval: IntArray
    n_rates: int
    n_intervals: int
    start: int


@dataclass(frozen=True, slots=True)
class QPSolution:
    """Rates (W, float) per rate variable, loads (W) per interval and the objective in W^2."""

    rates_w: FloatArray
    load_w: FloatArray
    objective_w2: float
    iterations: int
    status: str


def build_qp(
    *,
    base_load_w: Sequence[int] | FloatArray,
    start: int,
    requests: Sequence[CDRequest],
    residual_units: Sequence[int],
    objective: Objective,
    previous_load_w: float | None = None,
    load_limit_w: int | None = None,
    end: int | None = None,
) -> QPProblem:
    """Build the QP for intervals ``start .. end`` (default: the end of the base load).

    ``residual_units[i]`` is what request ``i`` still has to receive (charge) or may still give
    (discharge), in W-intervals; windows are clipped to ``[start, end)``.  A charge request that
    cannot receive its residual even at its maximum rate raises :class:`InfeasibleProblemError`
    here, naming the request, rather than as an opaque solver status.
    """
    stop = len(base_load_w) if end is None else end
    base = np.asarray(base_load_w, dtype=np.float64)[start:stop] / 1000.0
    horizon = int(base.size)
    if horizon <= 0:
        raise SolverError("no intervals left to schedule", "empty")
    var_req: list[int] = []
    var_int: list[int] = []
    var_ub: list[float] = []
    var_sign: list[float] = []
    charge_rows: list[int] = []
    discharge_rows: list[int] = []
    for i, request in enumerate(requests):
        first = max(request.arrival, start) - start
        last = min(request.departure, stop) - start
        width = max(0, last - first)
        residual = int(residual_units[i])
        if request.kind is Kind.CHARGE:
            if residual > request.max_rate_w * width:
                raise InfeasibleProblemError(
                    f"request {request.request_id} needs {residual} W-intervals but can take at "
                    f"most {request.max_rate_w * width} before departure",
                    "infeasible",
                )
            charge_rows.append(i)
        else:
            discharge_rows.append(i)
        var_req.extend([i] * width)
        var_int.extend(range(first, last))
        var_ub.extend([request.max_rate_w / 1000.0] * width)
        var_sign.extend([1.0 if request.kind is Kind.CHARGE else -1.0] * width)
    n = len(var_req)
    nz = n + horizon
    vreq = np.asarray(var_req, dtype=np.int64)
    vint = np.asarray(var_int, dtype=np.int64)
    ub = np.asarray(var_ub, dtype=np.float64)
    sign = np.asarray(var_sign, dtype=np.float64)
    residual_kw = np.asarray([int(v) for v in residual_units], dtype=np.float64) / 1000.0
    idx = np.arange(n, dtype=np.int64)
    loads = n + np.arange(horizon, dtype=np.int64)

    # Row numbers of each request's energy row: charge rows are equalities (zero cone) and come
    # right after the load rows; discharge rows open the non-negative block.
    n_charge, n_discharge = len(charge_rows), len(discharge_rows)
    energy_row = np.empty(len(requests), dtype=np.int64)
    energy_row[np.asarray(charge_rows, dtype=np.int64)] = horizon + np.arange(n_charge)
    energy_row[np.asarray(discharge_rows, dtype=np.int64)] = (
        horizon + n_charge + np.arange(n_discharge)
    )
    bound_row = horizon + n_charge + n_discharge
    rows = [
        np.arange(horizon),  # L_k ...
        vint,  # ... - sum(sign * x) = base_k
        energy_row[vreq] if n else idx,  # sum of a request's rates
        bound_row + idx,  # x <= U
        bound_row + n + idx,  # -x <= 0
    ]
    cols = [loads, idx, idx, idx, idx]
    vals = [np.ones(horizon), -sign, np.ones(n), np.ones(n), -np.ones(n)]
    rhs = [base, residual_kw[charge_rows], residual_kw[discharge_rows], ub, np.zeros(n)]
    n_rows = bound_row + 2 * n
    if load_limit_w is not None:
        rows.append(n_rows + np.arange(horizon))
        cols.append(loads)
        vals.append(np.ones(horizon))
        rhs.append(np.full(horizon, load_limit_w / 1000.0))
        n_rows += horizon
    # scipy (about 22 MiB resident) is imported by the first plan that needs it, not by every
    # process that imports the application: most blocks plan nothing (ADR 0046).
    import scipy.sparse as sp  # noqa: PLC0415

    a_matrix = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_rows, nz)
    )
    b = np.concatenate(rhs)

    # The solver minimises 1/2 z'Pz, so P is twice the quadratic form, upper triangle only.
    q = np.zeros(nz)
    if objective is Objective.RAMP:
        # sum (L_k - L_{k-1})^2 = L'D'D L; a known previous load p adds (L_0 - p)^2.
        diag = np.full(horizon, 4.0)
        diag[0] = diag[-1] = 2.0
        if horizon == 1:
            diag[0] = 0.0
        if previous_load_w is not None:
            diag[0] += 2.0
            q[n] = -2.0 * previous_load_w / 1000.0
        p_rows = np.concatenate([loads, loads[:-1]])
        p_cols = np.concatenate([loads, loads[1:]])
        p_vals = np.concatenate([diag, np.full(horizon - 1, -2.0)])
    else:
        p_rows, p_cols, p_vals = loads, loads, np.full(horizon, 2.0)
    p_matrix = sp.csc_matrix((p_vals, (p_rows, p_cols)), shape=(nz, nz))
    return QPProblem(
        p_matrix=p_matrix,
        q=q,
        a_matrix=a_matrix,
        b=b,
        n_zero=horizon + n_charge,
        var_request=vreq,
        var_interval=vint,
        n_rates=n,
        n_intervals=horizon,
        start=start,
    )


def objective_w2(load_w: FloatArray, objective: Objective, previous_load_w: float | None) -> float:
    """The objective of a load profile in W^2, computed from the loads themselves."""
    if objective is Objective.LEVEL:
        return float(np.square(load_w).sum())
    cost = float(np.square(np.diff(load_w)).sum())
    if previous_load_w is not None and load_w.size:
        cost += float((load_w[0] - previous_load_w) ** 2)
    return cost


_SOLVED = ("Solved",)
_INFEASIBLE = ("PrimalInfeasible", "AlmostPrimalInfeasible")


def solve_qp(
    problem: QPProblem,
    objective: Objective,
    previous_load_w: float | None = None,
    *,
    max_iter: int = 200,
) -> QPSolution:
    """Solve with Clarabel; raise :class:`SolverError` unless it reports a solved problem."""
    import clarabel  # type: ignore[import-untyped]  # noqa: PLC0415 - as scipy above

    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_iter = max_iter
    cones = [
        clarabel.ZeroConeT(problem.n_zero),
        clarabel.NonnegativeConeT(problem.a_matrix.shape[0] - problem.n_zero),
    ]
    solver = clarabel.DefaultSolver(
        problem.p_matrix, problem.q, problem.a_matrix, problem.b, cones, settings
    )
    result = solver.solve()
    status = str(result.status)
    if status in _INFEASIBLE:
        raise InfeasibleProblemError(f"the scheduling QP is infeasible ({status})", status)
    if status not in _SOLVED:
        raise SolverError(f"Clarabel did not solve the scheduling QP: {status}", status)
    z = np.asarray(result.x, dtype=np.float64)
    if z.size != problem.p_matrix.shape[0] or not np.all(np.isfinite(z)):
        raise SolverError("Clarabel returned no finite solution", status)
    n = problem.n_rates
    load = z[n:] * 1000.0
    return QPSolution(
        rates_w=np.clip(z[:n] * 1000.0, 0.0, None),
        load_w=load,
        objective_w2=objective_w2(load, objective, previous_load_w),
        iterations=int(result.iterations),
        status=status,
    )
