"""The source's four power fluctuation levels (PFL), one function per equation.

They are reporting metrics (floats); the consensus-critical form of eq. 6.4 is
:func:`market.scheduling.verify.ramp_cost_w2`.  Every function takes the community load in W per
interval and works in kW, the unit of the source's figures, so its numbers can be put side by
side with ours.

- eq. 3.11: ``ln((max - min) / mean)``.  The source writes "log"; the natural logarithm is the
  one consistent with its own numbers (max 329.5 kVA, min 58.5 kVA and PFL 0.56 imply a mean of
  about 155 kVA with ln, but 75 kVA with log10, below the load's own minimum plus EV charging).
- eq. 4.4: ``sum_t |P(t) - P(t-1)|``, the total variation in kW.
- eq. 5.7: the variance (population, 1/T) of the slope ``l(t) = dP/dt`` in kW per hour; the
  source reports its cube root, which :func:`pf_cube_root` gives.
- eq. 6.4: ``sum_t (P(t) - P(t-1))^2`` in kW^2, the objective of the online problem (4)/(6).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gridchain.market.scheduling.errors import ScenarioError

FloatArray = npt.NDArray[np.float64]


def _kw(load_w: Sequence[float] | FloatArray) -> FloatArray:
    arr = np.asarray(load_w, dtype=np.float64) / 1000.0
    if arr.ndim != 1 or arr.size < 2:
        raise ScenarioError("a load profile needs at least two intervals")
    return arr


def pfl_eq_3_11(load_w: Sequence[float] | FloatArray) -> float:
    """``ln((max - min) / mean)`` of the load; -inf for a perfectly flat load."""
    p = _kw(load_w)
    mean = float(p.mean())
    if mean <= 0.0:
        raise ScenarioError("eq. 3.11 needs a positive mean load")
    spread = float(p.max() - p.min())
    return -math.inf if spread == 0.0 else math.log(spread / mean)


def pfl_eq_4_4(load_w: Sequence[float] | FloatArray) -> float:
    """Sum of absolute changes between consecutive intervals, kW."""
    return float(np.abs(np.diff(_kw(load_w))).sum())


def pfl_eq_5_7(load_w: Sequence[float] | FloatArray, interval_min: int) -> float:
    """Variance of the slope dP/dt (kW/h)^2 over the day."""
    slope = np.diff(_kw(load_w)) * (60.0 / interval_min)
    return float(slope.var())


def pf_cube_root(pf: float) -> float:
    """The cube root the source applies to eq. 5.7 before quoting it (48.5 and 32.4)."""
    return float(np.cbrt(pf))


def pfl_eq_6_4(load_w: Sequence[float] | FloatArray) -> float:
    """Sum of squared changes between consecutive intervals, kW^2."""
    return float(np.square(np.diff(_kw(load_w))).sum())


def all_pfl(load_w: Sequence[float] | FloatArray, interval_min: int) -> dict[str, float]:
    """All four forms keyed by equation, for tables and JSON."""
    return {
        "eq3_11": pfl_eq_3_11(load_w),
        "eq4_4": pfl_eq_4_4(load_w),
        "eq5_7": pfl_eq_5_7(load_w, interval_min),
        "eq6_4": pfl_eq_6_4(load_w),
    }
