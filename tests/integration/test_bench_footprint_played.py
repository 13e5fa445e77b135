"""``gridchain bench footprint --played DIR`` on a tiny bench state play: the processes run on
that play's ledger (topped up to now, cloned), the report says which ledger it was, and the
play in DIR goes on afterwards with ``bench state --resume`` although the validator committed
blocks of its own while it was measured.  The figures are never asserted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import gridchain.bench.cluster
from gridchain.bench import footprint
from gridchain.bench.state import BLOCKS_PER_DAY, recent_genesis_ms, run
from tests.procs import free_port_block

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _test_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gridchain.bench.cluster, "_base_port", free_port_block)


@pytest.mark.parametrize("gateways", [1, 0])
def test_footprint_on_a_played_ledger_leaves_the_play_resumable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gateways: int
) -> None:
    genesis_ms = recent_genesis_ms(1, int(time.time() * 1000))
    run(2, 1, tmp_path, do_replay=False, genesis_time_ms=genesis_ms, gateways=gateways)
    capsys.readouterr()
    argv = ["--json", "--played", str(tmp_path), "--idle-s=2", "--settle-s=1"]
    assert footprint.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    played = report["played"]
    assert played["directory"] == str(tmp_path)
    assert played["days_before"] == 1
    assert played["days_after"] >= 1
    assert report["days"] == played["days_after"]
    assert report["blocks"] == played["height_after"] >= BLOCKS_PER_DAY
    assert (
        played["height_after"] == played["days_after"] * BLOCKS_PER_DAY + played["partial_blocks"]
    )
    assert played["clone"]["linked_files"] + played["clone"]["copied_files"] > 0
    assert report["state_snapshot"]["height"] == report["blocks"]
    expected = ["bridge", "gateway", "validator"] if gateways else ["bridge", "validator"]
    assert sorted(report["processes"]) == expected
    assert ("no_gateway" in report) == (not gateways)
    for row in report["processes"].values():
        assert row["rss_mib"] > 0
    # the measured validator wrote into the clone, which is gone; the play goes on
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".footprint-")]
    days = played["days_after"] + 1
    later = run(
        2,
        days,
        tmp_path,
        do_replay=False,
        resume=True,
        genesis_time_ms=genesis_ms,
        gateways=gateways,
    )
    assert later["blocks"] == days * BLOCKS_PER_DAY
