"""The integer verification and benefit that validators run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gridchain.market.scheduling import verify
from gridchain.market.scheduling.errors import (
    DeadlineUnreachableError,
    EnergyExceededError,
    NegativeRateError,
    RateAboveMaxError,
    RateOutsideWindowError,
    ScheduleShapeError,
)
from gridchain.market.scheduling.model import CDRequest, Kind
from gridchain.market.scheduling.verify import (
    BENEFIT_SCALE,
    benefit,
    check_schedule,
    net_load_w,
    ramp_cost_w2,
    required_units,
)

# 10-minute intervals: 1 W for one interval is 1/6 Wh, so 1 Wh needs 6 W-intervals.
CHARGE = CDRequest(1, Kind.CHARGE, arrival=1, departure=4, energy_wh=5, max_rate_w=12)
DISCHARGE = CDRequest(2, Kind.DISCHARGE, arrival=0, departure=3, energy_wh=2, max_rate_w=10)
REQUESTS = (CHARGE, DISCHARGE)


def test_required_units_round_up_to_whole_w_intervals() -> None:
    assert required_units(CHARGE, 10) == 30
    assert required_units(CDRequest(3, Kind.CHARGE, 0, 1, 1, 10), 7) == 9  # ceil(60 / 7)


def test_a_complete_valid_schedule_passes() -> None:
    check_schedule(REQUESTS, [[0, 10, 10, 10], [5, 5, 0, 0]], interval_min=10)


@pytest.mark.parametrize(
    ("rows", "error"),
    [
        ([[0, 10, 10, 10], [5, 5, 0, -1]], NegativeRateError),
        ([[1, 10, 10, 9], [0, 0, 0, 0]], RateOutsideWindowError),
        ([[0, 10, 10, 10], [0, 0, 0, 5]], RateOutsideWindowError),
        ([[0, 13, 10, 7], [0, 0, 0, 0]], RateAboveMaxError),
        ([[0, 10, 10, 11], [0, 0, 0, 0]], EnergyExceededError),
        ([[0, 10, 10, 10], [10, 3, 0, 0]], EnergyExceededError),
        ([[0, 10, 10, 9], [0, 0, 0, 0]], DeadlineUnreachableError),
        ([[0, 10, 10, 10], [0, 0, 0]], ScheduleShapeError),
        ([[0, 10, 10, 10.0], [0, 0, 0, 0]], ScheduleShapeError),
        ([[0, 10, 10, True], [0, 0, 0, 0]], ScheduleShapeError),
        ([[0, 10, 10, 10]], ScheduleShapeError),
    ],
)
def test_each_rule_has_its_own_error(rows: list[list[int]], error: type[Exception]) -> None:
    with pytest.raises(error):
        check_schedule(REQUESTS, rows, interval_min=10)


def test_the_error_names_the_request() -> None:
    with pytest.raises(RateAboveMaxError) as caught:
        check_schedule(REQUESTS, [[0, 13, 10, 7], [0, 0, 0, 0]], interval_min=10)
    assert caught.value.request_id == 1


def test_a_one_interval_block_is_checked_for_reachability() -> None:
    # After 10 W at interval 1, 20 W-intervals remain and 2 intervals of 12 W are left: fine.
    check_schedule(REQUESTS, [[10], [0]], interval_min=10, first_interval=1)
    # With nothing at interval 2 and 10 delivered so far, 20 remain but only 12 fit: refuse.
    with pytest.raises(DeadlineUnreachableError):
        check_schedule(
            REQUESTS, [[0], [0]], interval_min=10, first_interval=2, delivered_units=[10, 0]
        )
    # With 18 already delivered, 12 remain and fit into interval 3 alone.
    check_schedule(REQUESTS, [[0], [0]], interval_min=10, first_interval=2, delivered_units=[18, 0])


def test_ramp_cost_and_benefit_by_hand() -> None:
    base = [100, 120, 90]
    request = CDRequest(7, Kind.CHARGE, 0, 3, 5, 40)  # 5 Wh at 10 min = 30 W-intervals
    rows = [[0, 0, 30]]
    load = net_load_w(base, [request], rows)
    assert load == [100, 120, 120]
    # (100-110)^2 + (120-100)^2 + (120-120)^2
    assert ramp_cost_w2(load, previous_load_w=110) == 500
    assert benefit(base, [request], rows, previous_load_w=110) == BENEFIT_SCALE // 501
    # A literal, so the same test pins the value on every platform the suite runs on.
    assert benefit(base, [request], rows, previous_load_w=110) == 1996007984031936127744510978


def test_benefit_is_higher_for_a_flatter_load() -> None:
    base = [100, 120, 90]
    request = CDRequest(7, Kind.CHARGE, 0, 3, 5, 40)
    flat = benefit(base, [request], [[10, 0, 20]])  # 110, 120, 110
    peaky = benefit(base, [request], [[0, 30, 0]])  # 100, 150, 90
    assert flat > peaky > 0


def test_benefit_is_identical_across_runs_and_inputs_of_equal_value() -> None:
    base = [150_000 + 997 * k % 40_000 for k in range(144)]
    requests = [
        CDRequest(i, Kind.CHARGE if i % 3 else Kind.DISCHARGE, i % 50, 100 + i % 44, 3_000, 7_000)
        for i in range(60)
    ]
    rows = [
        [(k * 37 + i * 11) % 700 if r.arrival <= k < r.departure else 0 for k in range(144)]
        for i, r in enumerate(requests)
    ]
    first = benefit(base, requests, rows, previous_load_w=140_000)
    again = benefit(
        list(base), list(requests), [tuple(row) for row in rows], previous_load_w=140_000
    )
    assert first == again
    assert isinstance(first, int)


def test_verify_module_uses_integers_only() -> None:
    """No floats, no true division, no numpy or math in the consensus-critical module."""
    source = Path(verify.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            assert not isinstance(node.value, float), f"float literal at line {node.lineno}"
        if isinstance(node, ast.BinOp | ast.AugAssign):
            assert not isinstance(node.op, ast.Div), f"true division at line {node.lineno}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"float", "round", "pow"}, f"{node.func.id} at {node.lineno}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names]
            module = getattr(node, "module", None) or ""
            for name in [module, *names]:
                assert not name.startswith(("numpy", "math", "decimal", "fractions")), name
