"""``gridchain bench state --compare-fresh``: the aged ledger and a fresh one in one process.

Why: the comparison's ratio is only worth something if both sides are the real plays: the
aged side must leave the play in its directory exactly where an uninterrupted play of the
longer span would be (and resumable, its progress saved as usual), the fresh side must be the
community's first days as a fresh run makes them, and the report must carry every figure the
docs promise.  Timings are never asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridchain.bench import state_progress as progress
from gridchain.bench.state import BLOCK_KINDS, BLOCKS_PER_DAY, main, run
from gridchain.bench.state_compare import Compactions, compare_fresh
from tests.unit.bench.played import block_at


def test_the_aged_side_goes_on_with_the_play_and_the_fresh_side_is_a_fresh_run(
    tmp_path: Path, straight: Path
) -> None:
    aged = tmp_path / "aged"
    aged.mkdir()
    run(2, 1, aged, do_replay=False)
    report = compare_fresh(aged, 1, tmp_path / "fresh")
    # the aged side ends where an uninterrupted two-day play does ...
    assert block_at(aged / "ledger") == block_at(straight / "ledger")
    # ... and the fresh side is that play's first day, from genesis
    assert block_at(tmp_path / "fresh" / "ledger") == block_at(straight / "ledger", BLOCKS_PER_DAY)
    saved = progress.load(aged)
    assert saved is not None
    assert saved.played_days == 2
    assert [(f.day, f.blocks, f.run, f.compared) for f in saved.day_log] == [
        (0, BLOCKS_PER_DAY, 1, False),
        (1, BLOCKS_PER_DAY, 2, True),
    ]
    # a later resumed run goes on from the comparison's day, and says which day it measured
    later = run(2, 3, aged, do_replay=False, resume=True)
    assert later["blocks"] == 3 * BLOCKS_PER_DAY
    assert later["runs"] == 3
    assert later["compared_days"] == [1]

    assert report["aged"]["age_days"] == 1.0
    assert report["aged"]["from_height"] == BLOCKS_PER_DAY
    assert report["aged"]["height"] == 2 * BLOCKS_PER_DAY
    assert report["fresh"]["height"] == BLOCKS_PER_DAY
    for side in ("aged", "fresh"):
        figures = report[side]
        assert figures["live_state_entries"] > 0
        assert figures["ledger_bytes"] == figures["live_bytes"] + figures["history_bytes"]
        assert figures["history_bytes"] > 0
        assert sorted(figures["compactions"]) == ["history", "live"]
        assert figures["own_cost_ms_per_block"] > 0
    assert sorted(report["kinds"]) == sorted([*BLOCK_KINDS, "all"])
    for kind, row in report["kinds"].items():
        per_side = BLOCKS_PER_DAY if kind == "all" else BLOCKS_PER_DAY // len(BLOCK_KINDS)
        assert row["aged"]["blocks"] == row["fresh"]["blocks"] == per_side
        for figure in ("wall_ms", "cpu_ms", "thread_cpu_ms"):
            assert set(row["aged"][figure]) == {"median", "mean"}
            assert set(row["aged_over_fresh"][figure]) == {"median", "mean"}
    assert report["own_cost_aged_over_fresh"] is not None
    assert report["background_cpu_s"] >= 0
    assert sorted(report["background_share"]) == ["aged", "fresh"]
    assert sum(report["background_share"].values()) == pytest.approx(1.0, abs=0.002)
    for side in ("aged", "fresh"):
        assert report[side]["background_cpu_ms_per_block"] >= 0
    assert "load_avg_1m_before" in report["conditions"]
    assert "mem_available_mib" in report["conditions"]


def test_a_directory_without_a_play_is_refused(tmp_path: Path) -> None:
    with pytest.raises(progress.ProgressError, match="no play"):
        compare_fresh(tmp_path, 1, tmp_path / "fresh")
    assert not (tmp_path / "ledger").exists()


def test_leveldb_compaction_table_is_summed_over_levels() -> None:
    table = (
        "                               Compactions\n"
        "Level  Files Size(MB) Time(sec) Read(MB) Write(MB)\n"
        "--------------------------------------------------\n"
        "  0        3        1         2        0         5\n"
        "  1        2        1         1        7         6\n"
    )
    assert Compactions.parse(table) == Compactions(3.0, 7.0, 11.0)
    assert Compactions.parse("") == Compactions()


def test_the_command_line_compares_and_refuses_what_it_cannot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--compare-fresh", "--data-dir", str(tmp_path)])
    assert "needs --resume and --data-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--compare-fresh", "--resume", "--data-dir", str(tmp_path)])
    assert "no play" in capsys.readouterr().err
    run(2, 1, tmp_path, do_replay=False)
    with pytest.raises(SystemExit):
        main(["--compare-fresh", "--resume", "--households", "3", "--data-dir", str(tmp_path)])
    assert "has 2 households" in capsys.readouterr().err
    argv = ["--compare-fresh", "--resume", "--data-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "age 1.0 days" in out
    assert "own cost (main-thread CPU + that share) aged/fresh" in out
    for kind in BLOCK_KINDS:
        assert f"{kind} " in out
    assert block_at(tmp_path / "ledger")[0] == 2 * BLOCKS_PER_DAY


def test_a_progress_file_without_the_later_fields_is_written_as_before(tmp_path: Path) -> None:
    run(2, 1, tmp_path, do_replay=False)
    raw = (tmp_path / progress.PROGRESS_FILE).read_text()
    assert '"gateways"' not in raw
    assert '"compared"' not in raw
    compare_fresh(tmp_path, 1, tmp_path / "fresh")
    raw = (tmp_path / progress.PROGRESS_FILE).read_text()
    assert '"compared":true' in raw
