"""Re-planning during the day: today's readings so far correct the rest of today's forecast.

The day-ahead forecast (forecast.py) is fitted on whole days before today, so a cloudy morning
after a week of sun leaves the plan selling PV that will not come (ADR 0037's figures: on its
own forecasts the plan lost to the rule under the chain's asymmetric tariffs for exactly this
reason).  Each cycle therefore compares today's forecast with what the bridge measured in the
intervals already over.  When the error (nRMSE, forecast.errors) exceeds the user's threshold
over enough intervals, the rest of today is scaled by the measured / forecast energy ratio of
those intervals (clamped), and the plan of that cycle, a new version like every cycle's, is made
on the corrected forecast.  Below the threshold the forecast stands: a small error is noise, and
scaling on it would make the plan chase every passing cloud.

Pure: no clock, no I/O; the caller passes "now" as the index of the interval in progress.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gridchain.agent.forecast import FloatArray, errors

#: A morning at three times (or a third of) the forecast is a different day, not noise; a
#: larger factor would come from a forecast near zero and mean nothing.
MAX_FACTOR = 3.0


@dataclass(frozen=True, slots=True)
class Correction:
    """How today's forecast did so far, and whether the rest of the day was corrected."""

    intervals: int
    nrmse: float
    factor: float
    applied: bool


def correct_today(
    forecast: FloatArray,
    measured: Mapping[int, float],
    now_index: int,
    *,
    threshold: float,
    min_intervals: int,
) -> tuple[FloatArray, Correction | None]:
    """Today's forecast (one value per interval of the day), corrected from ``now_index`` on.

    ``measured`` maps an interval of today (its index in the day) to the measured kW; only the
    intervals before ``now_index`` (the one in progress is partial) count.  Returns the
    forecast unchanged and None when fewer than ``min_intervals`` were measured.
    """
    elapsed = [i for i in range(min(now_index, len(forecast))) if i in measured]
    if len(elapsed) < min_intervals:
        return forecast, None
    actual = np.array([measured[i] for i in elapsed])
    predicted = forecast[elapsed]
    nrmse = errors(actual, predicted).nrmse
    expected = float(predicted.sum())
    factor = min(float(actual.sum()) / expected, MAX_FACTOR) if expected > 1e-9 else 1.0
    applied = nrmse > threshold and factor != 1.0
    correction = Correction(len(elapsed), nrmse, factor, applied)
    if not applied:
        return forecast, correction
    corrected = forecast.copy()
    corrected[now_index:] = corrected[now_index:] * factor
    return corrected, correction
