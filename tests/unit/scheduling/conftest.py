"""Small scenarios for the scheduling tests: the source's community shrunk so that the whole
directory runs in seconds (20 EVs, 40 households, half-hourly decisions) while keeping its
structure (two connection segments, the battery and charger mix, V2G requests)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gridchain.market.scheduling.model import Scenario
from gridchain.market.scheduling.scenarios import STANDARD, ScenarioParams, generate, scaled

SMALL = scaled(replace(STANDARD, interval_min=30), evs=20)


def small(seed: int, params: ScenarioParams = SMALL) -> Scenario:
    return generate(params, seed)


@pytest.fixture(params=[1, 2, 3])
def small_scenario(request: pytest.FixtureRequest) -> Scenario:
    seed: int = request.param
    return small(seed)
