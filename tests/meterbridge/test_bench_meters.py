"""The meters benchmark runs, and its bus budget is the RTU frame arithmetic."""

from __future__ import annotations

import json

import pytest

from gridchain.bench import meters


def test_bus_budget_matches_frame_sizes() -> None:
    rows = {r["profile"]: r for r in meters.bus_budget(9600, meters_on_bus=32)}
    sdm = rows["eastron-sdm120"]
    # Three requests: voltage, power (both float32 pairs apart) and the two energy registers.
    assert sdm["requests_per_reading"] == 3
    assert sdm["bytes_per_reading"] == 3 * 8 + (5 + 4) + (5 + 4) + (5 + 8)
    # Each exchange also keeps the line silent for 2 x 3.5 characters; 10 bits per character.
    assert sdm["line_ms_per_reading"] == pytest.approx(1000 * (55 + 3 * 7) * 10 / 9600, abs=0.01)
    assert rows["generic"]["requests_per_reading"] == 1


def test_benchmark_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert meters.main(["--meters", "2", "--seconds", "0.3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sustained_no_line_timing"]["readings"] > 0
    assert report["sustained_with_line_timing"]["line_baud"] == 9600
    assert {r["profile"] for r in report["bus_budget"]} >= {"generic", "eastron-sdm630"}
