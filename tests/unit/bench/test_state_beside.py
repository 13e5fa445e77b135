"""The replay beside the play (``bench state --replay-beside``) is the replay, in a second process.

Why: a year's replay takes as long as its play; beside it, on the second core, it ends about
when the play ends.  It must still be the replay a validator does: every block checked and
executed again on its own ledger to the same roots, a replay that starts behind (a play resumed
with it part way through) catching up, and a replaying process that fails or dies stopping the
play with its reason, never leaving a report that says the year was replayed.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from gridchain.bench import state_progress as progress
from gridchain.bench.state import BLOCKS_PER_DAY, community, format_report, main, run
from gridchain.bench.state_beside import ReplayBeside, ReplayBesideError
from gridchain.node.store import Store
from tests.unit.bench.played import block_at


def test_the_replay_beside_reaches_every_block_with_the_plays_roots(
    tmp_path: Path, straight: Path
) -> None:
    report = run(2, 2, tmp_path, do_replay=True, replay_beside=True)
    assert block_at(tmp_path / "ledger") == block_at(straight / "ledger")
    # Equal block hashes at every height: the replay committed the play's blocks, each
    # executed to the state root its header names (a divergence stops the replay).
    for height in (1, BLOCKS_PER_DAY, 2 * BLOCKS_PER_DAY):
        assert block_at(tmp_path / "replay", height) == block_at(straight / "ledger", height)
    replayed = report["replay"]
    assert replayed["blocks"] == replayed["timed_blocks"] == 2 * BLOCKS_PER_DAY
    assert (replayed["runs"], replayed["beside_runs"]) == (1, 1)
    assert replayed["cpu_seconds"] > 0
    assert any("beside the play" in line for line in format_report(report))
    saved = progress.load(tmp_path)
    assert saved is not None
    assert saved.replay is not None
    assert saved.replay.height == 2 * BLOCKS_PER_DAY


def test_a_replay_that_starts_behind_catches_up_while_the_play_goes_on(
    tmp_path: Path, straight: Path
) -> None:
    run(2, 1, tmp_path, do_replay=False)
    report = run(2, 2, tmp_path, do_replay=True, resume=True, replay_beside=True)
    assert report["replay"]["blocks"] == report["replay"]["timed_blocks"] == 2 * BLOCKS_PER_DAY
    assert block_at(tmp_path / "replay") == block_at(straight / "ledger")
    # A process that finds the play and the replay at their end plays and replays nothing: it
    # is a run of neither.
    again = run(2, 2, tmp_path, do_replay=True, resume=True, replay_beside=True)
    assert again["runs"] == report["runs"] == 2
    assert again["replay"] == report["replay"]


def test_a_replay_ledger_of_another_chain_stops_the_play_before_it_plays(
    tmp_path: Path,
) -> None:
    other = tmp_path / "other"
    run(3, 1, other, do_replay=False)
    played = tmp_path / "play"
    run(2, 1, played, do_replay=False)
    shutil.copytree(other / "ledger", played / "replay")
    with pytest.raises(ReplayBesideError, match="replay stopped at block 0"):
        run(2, 2, played, do_replay=True, resume=True, replay_beside=True)
    saved = progress.load(played)
    assert saved is not None
    assert saved.played_days == 1
    assert block_at(played / "ledger")[0] == BLOCKS_PER_DAY


def test_a_replaying_process_that_dies_is_said_and_stops_the_play(
    tmp_path: Path, straight: Path
) -> None:
    genesis = community(2).bundle.genesis
    source = Store(straight / "ledger")
    beside = ReplayBeside(genesis, source, tmp_path / "replay")
    try:
        os.kill(beside.pid, signal.SIGKILL)
        with pytest.raises(ReplayBesideError, match=r"without saying why \(exit code -9\)"):
            beside.finish(timeout_s=60)
    finally:
        beside.close()
        source.close()


def test_the_command_line_refuses_a_replay_beside_without_a_replay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--days", "1", "--no-replay", "--replay-beside"])
    assert "exclude each other" in capsys.readouterr().err


def test_the_report_says_which_replay_runs_were_beside_the_play(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    played = tmp_path / "play"
    run(2, 1, played, do_replay=True)
    capsys.readouterr()
    report = run(2, 2, played, do_replay=True, resume=True, replay_beside=True)
    # the day's line says how far the replay is (at least the first process's day)
    day_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert day_line.startswith("day 2 of 2:")
    assert int(day_line.rsplit("replayed to block ", 1)[1]) >= BLOCKS_PER_DAY
    assert (report["replay"]["runs"], report["replay"]["beside_runs"]) == (2, 1)
    assert report["replay"]["blocks"] == 2 * BLOCKS_PER_DAY
    line = next(line for line in format_report(report) if line.startswith("replay:"))
    assert line.endswith("2 run(s) (1 of them beside the play, each block's own time)")
