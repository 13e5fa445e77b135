"""``gridchain bench cdday`` and ``bench consensus`` end to end on tiny settings: shapes only.

Benchmarks measure; these tests never assert a timing or a figure's size, only that a tiny
day (12 intervals of 300 ms standing for 2 hours each, 5 EVs, one solo validator) is played,
read back and compared, and that the consensus table has a row per (engine, size).
"""

from __future__ import annotations

import json

import pytest

import gridchain.bench.cluster
from gridchain.bench import cdday, consensus
from tests.procs import free_port_block

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _test_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gridchain.bench.cluster, "_base_port", free_port_block)


def test_cdday_plays_a_tiny_day_and_compares_it(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--json",
        "--engines=solo",
        "--evs=5",
        "--interval-minutes=120",
        "--interval-ms=300",
        "--startup-s=8",
        "--grace-s=1",
    ]
    assert cdday.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    scenario = report["scenario"]
    assert scenario["intervals"] == 12
    assert scenario["evs"] == 5
    assert len(report["base_load_kw"]) == 12
    assert set(report["library"]) == {"uncontrolled", "online", "offline"}
    assert report["library"]["offline"]["ratio_to_offline"] == pytest.approx(1.0)
    (row,) = report["rows"]
    assert "error" not in row, row
    assert row["engine"] == "solo"
    assert row["validators"] == 1
    assert row["base_load_matches"] is True
    assert len(row["load_kw"]) == 12
    assert row["requests"] == scenario["requests"]
    assert row["admitted"] + row["refused_count"] >= 1
    assert 0 <= row["decided_intervals"] <= 12
    assert row["charge_requests"] == scenario["charge_requests"]
    assert row["charge_delivered_wh"] <= row["charge_requested_wh"]
    assert set(row["decision_lead"]) == {"n", "p50_ms", "min_ms", "late"}
    for key in ("eq6_4_kw2", "ratio_to_offline", "missed_intervals", "window_mismatches"):
        assert isinstance(row[key], int | float)
    assert report["conditions"]["cpus"] >= 1


def test_cdday_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--engines=solo", "--evs=3", "--interval-minutes=240", "--interval-ms=200"]
    assert cdday.main([*argv, "--startup-s=8", "--grace-s=1"]) == 0
    out = capsys.readouterr().out
    assert "PFL eq6.4" in out
    for row in ("chain solo x1 online", "library uncontrolled", "library offline", "conditions:"):
        assert row in out


def test_consensus_runs_every_engine_and_size_in_one_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--json", "--engines=solo,pbft", "--validators=4", "--txs=64", "--senders=4"]
    argv.append("--repeat=2")
    assert consensus.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["engine"], r["validators"]) for r in report["clusters"]] == [
        ("solo", 1),
        ("pbft", 4),
    ]
    for r in report["clusters"]:
        assert "error" not in r, r
        assert r["submitted"] == 64
        assert set(r) >= {"tx_per_s", "latency_p50_ms", "latency_p99_ms", "bound_tx_per_s"}
        # the bound is the row's own: the mean of the verify rates measured around its run
        mean = (r["verify_per_s_before"] + r["verify_per_s_after"]) / 2
        assert r["bound_tx_per_s"] == pytest.approx(report["cores"] * mean / r["validators"], 1e-3)
        # two runs each, the row being one of them
        assert len(r["runs"]) == 2
        assert r["tx_per_s"] in [run["tx_per_s"] for run in r["runs"]]
    assert report["round_ms"] > 0
