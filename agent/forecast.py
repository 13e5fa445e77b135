"""Day-ahead forecasts of one quantity (PV or load, kW per interval) from whole days of history.

Seed 000 sec 2.3: a linear regression fitted on the previous 30 days of 15-minute readings (23
days to train, 7 to test), judged against the actual values.  The regression here is ordinary
least squares (with a tiny ridge term so a flat series, such as a PV meter at night, cannot
make the normal equations singular) on

* calendar features: the hour of the day (24 indicators) and, for a load, the hour of a
  weekend day (24 more: how Saturdays and Sundays differ);
* lagged features: the same interval one day earlier (and, for a load, seven days earlier: the
  same weekday), the same interval's mean over the last seven days (the shape of the day within
  the hour, one day's weather averaged out) and yesterday's mean (how sunny or busy yesterday
  was as a whole).

Its baseline is persistence: tomorrow equals today, interval by interval.  A forecaster that
cannot beat persistence on held-out days is not worth running, so :func:`evaluate` reports both
on the same days with the same error measures.

History is a ``(days, intervals per day)`` array of mean kW, day 0 starting at UTC midnight of
``first_day`` (days since the epoch), so the calendar of every row is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridchain.agent.errors import HistoryError

FloatArray = npt.NDArray[np.float64]

#: The lags the regression uses, in days (yesterday and the same weekday last week).
LAGS_DAYS = (1, 7)
#: Days of history before the first day the regression can be fitted or forecast on.
MIN_LAG_DAYS = max(LAGS_DAYS)
#: Ridge term: small against any real signal, large enough to keep a zero series solvable.
RIDGE = 1e-6
#: The source's split: 23 of 30 days train, 7 test.
TEST_DAYS = 7


def weekday_of(day: int) -> int:
    """0 = Monday for a day counted from 1970-01-01 (a Thursday)."""
    return (day + 3) % 7


def is_weekend(day: int) -> bool:
    return weekday_of(day) >= 5


def _features(history: FloatArray, first_day: int, d: int, weekly: bool) -> FloatArray:
    """The design rows of day index ``d`` (one per interval); needs days d-7..d-1."""
    per_day = history.shape[1]
    interval = np.arange(per_day)
    hour = (interval * 24) // per_day
    calendar = np.zeros((per_day, 24))
    calendar[interval, hour] = 1.0  # the hour of the day
    columns = [calendar]
    if weekly:
        weekend = np.zeros((per_day, 24))
        if is_weekend(first_day + d):
            weekend[interval, hour] = 1.0
        columns.append(weekend)  # how a weekend hour differs
    lags = LAGS_DAYS if weekly else LAGS_DAYS[:1]
    columns.append(np.column_stack([history[d - lag] for lag in lags]))
    # the interval's mean over the last week: the day's shape within the hour, with the
    # weather of one day averaged out
    columns.append(history[d - MIN_LAG_DAYS : d].mean(axis=0)[:, np.newaxis])
    columns.append(np.full((per_day, 1), float(history[d - 1].mean())))
    return np.hstack(columns)


@dataclass(frozen=True, slots=True)
class Regression:
    """A fitted model: coefficients over :func:`_features`' columns."""

    coefficients: FloatArray
    trained_days: int
    weekly: bool

    def predict(self, history: FloatArray, first_day: int, d: int) -> FloatArray:
        """Day ``d``'s intervals from the days before it (``history`` rows up to d-1 used).

        PV and load are never negative, so neither is a forecast of them.
        """
        predicted = _features(history, first_day, d, self.weekly) @ self.coefficients
        return np.maximum(predicted, 0.0)


def fit(history: FloatArray, first_day: int, days: range, *, weekly: bool) -> Regression:
    """Least squares over the given day indices (each needs seven days before it).

    ``weekly`` adds the weekend-hour indicators and the weekly lag: a household's load differs
    on weekends, the sun does not (for PV they would only fit the weather of the few days
    trained on).
    """
    if days.start < MIN_LAG_DAYS or len(days) == 0:
        raise HistoryError(
            f"the regression needs {MIN_LAG_DAYS} days of history before its first training "
            f"day and at least one training day (got days {days.start}..{days.stop - 1})"
        )
    x = np.vstack([_features(history, first_day, d, weekly) for d in days])
    y = np.concatenate([history[d] for d in days])
    gram = x.T @ x + RIDGE * np.eye(x.shape[1])
    coefficients: FloatArray = np.linalg.solve(gram, x.T @ y)
    return Regression(coefficients=coefficients, trained_days=len(days), weekly=weekly)


def persistence(history: FloatArray, d: int) -> FloatArray:
    """The baseline: day ``d`` repeats day ``d - 1``."""
    day: FloatArray = history[d - 1].copy()
    return day


def forecast_next_day(
    history: FloatArray, first_day: int, *, weekly: bool
) -> tuple[FloatArray, Regression]:
    """Tomorrow (day index ``len(history)``) from a model fitted on every usable day."""
    days = len(history)
    if days < MIN_LAG_DAYS + 1:
        raise HistoryError(
            f"a forecast needs at least {MIN_LAG_DAYS + 1} whole days of history, got {days}"
        )
    model = fit(history, first_day, range(MIN_LAG_DAYS, days), weekly=weekly)
    extended = np.vstack([history, np.zeros((1, history.shape[1]))])
    return model.predict(extended, first_day, days), model


@dataclass(frozen=True, slots=True)
class Errors:
    """Error measures of a forecast against what happened, over the same intervals.

    ``nrmse`` is the RMSE divided by the mean actual value (so a PV and a load series compare);
    ``mape`` is the mean absolute percentage error over the intervals whose actual value is at
    least 10 % of the series' peak (a percentage of a night-time PV zero means nothing).
    """

    mae_kw: float
    rmse_kw: float
    nrmse: float
    mape: float


def errors(actual: FloatArray, predicted: FloatArray) -> Errors:
    a, p = actual.ravel(), predicted.ravel()
    rmse = float(np.sqrt(np.mean((a - p) ** 2)))
    mean = float(np.mean(np.abs(a)))
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    significant = (np.abs(a) >= 0.1 * peak) & (np.abs(a) > 0)
    mape = (
        float(np.mean(np.abs((a[significant] - p[significant]) / a[significant])))
        if significant.any()
        else 0.0
    )
    return Errors(
        mae_kw=float(np.mean(np.abs(a - p))),
        rmse_kw=rmse,
        nrmse=rmse / mean if mean > 0 else 0.0,
        mape=mape,
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The regression and persistence on the same held-out days (source: 23 train, 7 test)."""

    train_days: int
    test_days: int
    regression: Errors
    persistence: Errors


def evaluate(
    history: FloatArray, first_day: int, *, weekly: bool, test_days: int = TEST_DAYS
) -> Evaluation:
    """Fit on the days before the last ``test_days``, forecast each held-out day a day ahead.

    Each held-out day is forecast from the actual days before it (a day-ahead forecast made
    the evening before), never from the forecast of the previous held-out day.
    """
    days = len(history)
    first_test = days - test_days
    if test_days < 1 or first_test <= MIN_LAG_DAYS:
        raise HistoryError(
            f"an evaluation with {test_days} test days needs more than "
            f"{MIN_LAG_DAYS + test_days} days of history, got {days}"
        )
    model = fit(history, first_day, range(MIN_LAG_DAYS, first_test), weekly=weekly)
    held_out = range(first_test, days)
    actual = np.vstack([history[d] for d in held_out])
    regression = np.vstack([model.predict(history, first_day, d) for d in held_out])
    baseline = np.vstack([persistence(history, d) for d in held_out])
    return Evaluation(
        train_days=first_test - MIN_LAG_DAYS,
        test_days=test_days,
        regression=errors(actual, regression),
        persistence=errors(actual, baseline),
    )


def forecast_days(history: FloatArray, first_day: int, count: int, *, weekly: bool) -> FloatArray:
    """The ``count`` days after the history, each from the days before it.

    The first is a day-ahead forecast from actual days; later ones use the forecasts before
    them as their lags (a plan's horizon may reach past tomorrow).
    """
    first, model = forecast_next_day(history, first_day, weekly=weekly)
    extended = np.vstack([history, first[np.newaxis, :]])
    for _ in range(count - 1):
        nxt = model.predict(
            np.vstack([extended, np.zeros((1, history.shape[1]))]), first_day, len(extended)
        )
        extended = np.vstack([extended, nxt[np.newaxis, :]])
    return extended[len(history) :]
