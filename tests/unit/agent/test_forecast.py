"""The forecaster on synthetic days whose structure is known (agent/forecast.py)."""

from __future__ import annotations

import numpy as np
import pytest

from gridchain.agent import forecast as fc
from gridchain.agent.errors import HistoryError

PER_DAY = 96
#: 2026-06-01 is a Monday.
MONDAY = 20605


def _shape() -> np.ndarray:
    hours = np.arange(PER_DAY) * 24 / PER_DAY
    return np.clip(np.sin(np.pi * (hours - 6) / 12), 0, None) * 3.0


def test_the_calendar_is_right() -> None:
    assert fc.weekday_of(MONDAY) == 0
    assert [fc.is_weekend(MONDAY + k) for k in range(7)] == [False] * 5 + [True] * 2


def test_a_repeating_day_is_forecast_exactly() -> None:
    history = np.tile(_shape(), (20, 1))
    tomorrow, model = fc.forecast_next_day(history, MONDAY, weekly=False)
    assert model.trained_days == 13
    np.testing.assert_allclose(tomorrow, _shape(), atol=1e-4)


def test_weekends_are_learnt_where_persistence_fails() -> None:
    """A load that is higher all weekend: persistence misses every Saturday and Monday, the
    regression's weekend hours and weekly lag do not."""
    rng = np.random.default_rng(7)
    days = 42
    base = 0.5 + 0.3 * np.cos(np.linspace(0, 2 * np.pi, PER_DAY))
    history = np.vstack(
        [
            base * (1.8 if fc.is_weekend(MONDAY + d) else 1.0) + rng.normal(0, 0.02, PER_DAY)
            for d in range(days)
        ]
    )
    ev = fc.evaluate(history, MONDAY, weekly=True, test_days=14)
    assert ev.regression.nrmse < 0.5 * ev.persistence.nrmse
    assert ev.regression.mape < 0.5 * ev.persistence.mape


def test_independent_weather_is_forecast_better_than_by_persistence() -> None:
    """PV = clear-sky curve x a clearness drawn afresh each day: the best day-ahead guess is the
    mean day, which the regression learns; persistence repeats yesterday's weather."""
    rng = np.random.default_rng(3)
    days = 90
    clearness = rng.uniform(0.3, 1.0, days)
    history = np.outer(clearness, _shape())
    ev = fc.evaluate(history, MONDAY, weekly=False, test_days=30)
    assert ev.train_days == 90 - 30 - fc.MIN_LAG_DAYS
    assert ev.regression.nrmse < ev.persistence.nrmse


def test_forecasts_are_never_negative_and_cover_the_days_asked() -> None:
    rng = np.random.default_rng(1)
    history = np.clip(np.outer(rng.uniform(0, 1, 20), _shape()) - 0.5, 0, None)
    days = fc.forecast_days(history, MONDAY, 3, weekly=False)
    assert days.shape == (3, PER_DAY)
    assert (days >= 0).all()


def test_too_little_history_is_refused() -> None:
    with pytest.raises(HistoryError):
        fc.forecast_next_day(np.zeros((7, PER_DAY)), MONDAY, weekly=True)
    with pytest.raises(HistoryError):
        fc.evaluate(np.zeros((14, PER_DAY)), MONDAY, weekly=True)


def test_error_measures() -> None:
    actual = np.array([0.0, 1.0, 2.0, 4.0])
    predicted = np.array([0.5, 1.0, 1.0, 5.0])
    e = fc.errors(actual, predicted)
    assert e.mae_kw == pytest.approx(0.625)
    assert e.rmse_kw == pytest.approx(np.sqrt((0.25 + 0 + 1 + 1) / 4))
    assert e.nrmse == pytest.approx(e.rmse_kw / 1.75)
    # the zero is below 10 % of the peak: MAPE over 1, 2 and 4 only
    assert e.mape == pytest.approx((0 + 0.5 + 0.25) / 3)
    assert fc.errors(np.zeros(4), np.zeros(4)).mape == 0.0
