"""``gridchain bench footprint`` on tiny settings: the shape of its report only, never its
figures (a validator, a gateway and a bridge as real processes on an aged ledger)."""

from __future__ import annotations

import json

import pytest

import gridchain.bench.cluster
from gridchain.bench import footprint
from tests.procs import free_port_block

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _test_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gridchain.bench.cluster, "_base_port", free_port_block)


def test_footprint_reports_rss_and_idle_cpu_of_each_process_and_the_snapshot(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--json", "--households=4", "--days=1", "--idle-s=2", "--settle-s=1"]
    assert footprint.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["blocks"] == 96 * 3
    assert report["live_state_entries"] > 0
    snapshot = report["state_snapshot"]
    assert snapshot["height"] == report["blocks"]
    assert snapshot["entries"] == report["live_state_entries"]
    assert snapshot["chunks"] >= 1
    assert sorted(report["processes"]) == ["bridge", "gateway", "validator"]
    for row in report["processes"].values():
        assert row["rss_mib"] > 0
        assert row["cpu_percent"] >= 0
        # the kernel's split of VmRSS (RssShmem, the rest, is none here); each rounded to 0.1
        assert row["rss_anon_mib"] > 0
        assert abs(row["rss_anon_mib"] + row["rss_file_mib"] - row["rss_mib"]) <= 0.2
        assert 0 <= row["ledger_mapped_mib"] <= row["rss_file_mib"]
    assert set(report["conditions"]) >= {"machine", "cpus", "python"}
