"""The scheduling benchmark runs end to end on tiny settings and reports what it promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridchain.bench.schedule import main


def test_bench_prints_json_with_every_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "day.png"
    argv = [
        "--json",
        "--workers=1",
        "--instances=2",
        "--table-instances=1",
        "--sweep-instances=1",
        "--theory-instances=1",
        "--ga-generations=3",
        "--evs=20",
        "--timing-repeats=1",
        "--timing-evs=10",
        "--sweep-c=1,1.5",
        f"--out={png}",
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert png.stat().st_size > 10_000
    assert report["conditions"]["cpus"] >= 1
    assert report["conditions"]["standard"]["evs"] == 20
    assert set(report["table"]) >= {"uncontrolled", "ga", "adbev", "offline", "online"}
    for row in report["table"].values():
        assert set(row) >= {"eq3_11", "eq4_4", "eq5_7", "eq6_4", "seconds"}
    for name in ("online", "epob"):
        assert report["competitive_ratio"][name]["n"] == 2
        assert report["competitive_ratio"][name]["min"] >= 1 - 1e-6
    assert set(report["c_sweep"]) == {"1", "1.5"}
    assert report["offline_timing"][0]["evs"] == 10
    assert {"ch3_eq3_11", "ch4_eq4_4_kw", "ch5_pf_cube_root", "ch6"} <= set(report["chapters"])


def test_bench_refuses_a_slow_down(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--c", "0.9"]) == 2
    assert "--c" in capsys.readouterr().err
