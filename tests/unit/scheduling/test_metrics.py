"""The four PFL forms on loads whose values can be worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridchain.market.scheduling.errors import ScenarioError
from gridchain.market.scheduling.genetic import FITNESS
from gridchain.market.scheduling.metrics import (
    all_pfl,
    pf_cube_root,
    pfl_eq_3_11,
    pfl_eq_4_4,
    pfl_eq_5_7,
    pfl_eq_6_4,
)

LOAD_W = [100_000, 150_000, 120_000, 130_000]  # kW: 100, 150, 120, 130


def test_eq_3_11_is_the_natural_log_of_spread_over_mean() -> None:
    assert pfl_eq_3_11(LOAD_W) == pytest.approx(math.log(50 / 125))


def test_eq_3_11_reproduces_the_sources_own_example() -> None:
    # Ch. 3: max 329.5 kVA, min 58.5 kVA, PFL 0.56 -> mean ~155 kVA with ln.
    mean = (329.5 - 58.5) / math.exp(0.56)
    assert 150 < mean < 160
    assert pfl_eq_3_11([329_500, 58_500, 3 * mean * 1000 - 388_000]) == pytest.approx(0.56)


def test_eq_4_4_sums_absolute_steps() -> None:
    assert pfl_eq_4_4(LOAD_W) == pytest.approx(50 + 30 + 10)


def test_eq_5_7_is_the_variance_of_the_slope_per_hour() -> None:
    # Steps of 50, -30, 10 kW per 30 minutes are slopes of 100, -60, 20 kW/h.
    slopes = np.array([100.0, -60.0, 20.0])
    assert pfl_eq_5_7(LOAD_W, 30) == pytest.approx(float(slopes.var()))
    assert pf_cube_root(27.0) == pytest.approx(3.0)


def test_eq_6_4_sums_squared_steps() -> None:
    assert pfl_eq_6_4(LOAD_W) == pytest.approx(2500 + 900 + 100)


def test_a_flat_load_has_no_fluctuation() -> None:
    flat = [200_000] * 6
    assert pfl_eq_3_11(flat) == -math.inf
    assert pfl_eq_4_4(flat) == pfl_eq_5_7(flat, 10) == pfl_eq_6_4(flat) == 0.0


def test_too_short_or_non_positive_loads_are_refused() -> None:
    with pytest.raises(ScenarioError):
        pfl_eq_4_4([1])
    with pytest.raises(ScenarioError):
        pfl_eq_3_11([-1, -2])


def test_all_pfl_names_every_form() -> None:
    assert set(all_pfl(LOAD_W, 10)) == {"eq3_11", "eq4_4", "eq5_7", "eq6_4"}


@pytest.mark.parametrize("name", sorted(FITNESS))
def test_ga_fitness_rows_rank_like_the_metrics(name: str) -> None:
    """The GA's vectorised fitness orders loads the same way as the reported metric."""
    rng = np.random.default_rng(5)
    loads = 100_000 + rng.uniform(0, 50_000, size=(8, 24))
    rows = FITNESS[name](loads)
    metric = {
        "eq3_11": pfl_eq_3_11,
        "eq4_4": pfl_eq_4_4,
        "eq5_7": lambda row: pfl_eq_5_7(row, 60),
        "eq6_4": pfl_eq_6_4,
    }[name]
    scalar = [metric(row) for row in loads]
    assert list(np.argsort(rows, kind="stable")) == list(np.argsort(scalar, kind="stable"))
