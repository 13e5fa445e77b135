"""``gridchain bench state`` goes on in a new process where the last one stopped.

Why: a community's year is hours of play and of replay, longer than a process may live on a
shared machine.  A play carried over by its progress file must be the play an uninterrupted
run makes (same blocks, same roots), a run stopped in mid-day must be caught up without a
block committed twice, and a progress file that does not belong to the ledger, does not parse
or is of another community must stop the bench before it plays anything.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from gridchain.bench import state_progress as progress
from gridchain.bench.state import (
    BLOCKS_PER_DAY,
    Ledger,
    community,
    main,
    play,
    replay,
    run,
)
from gridchain.node.store import Store
from tests.unit.bench.played import block_at


def _stop_in_day(directory: Path, day: int, blocks: int) -> None:
    """Play ``blocks`` of ``day`` into the ledger without saving progress: a process killed
    in mid-day, after the progress file of the day before."""
    saved = progress.load(directory)
    assert saved is not None
    assert saved.played_days == day
    people = community(saved.households)
    progress.restore(people, saved.generator)
    ledger = Ledger.open(people.bundle.genesis, directory / "ledger")
    try:
        for _ in itertools.islice(
            play(people.bundle, people, ledger, day + 1, first_day=day), blocks
        ):
            pass
    finally:
        ledger.store.close()


def test_a_play_carried_over_is_the_uninterrupted_play(tmp_path: Path, straight: Path) -> None:
    run(2, 1, tmp_path, do_replay=False)
    report = run(2, 2, tmp_path, do_replay=False, resume=True)
    assert block_at(tmp_path / "ledger") == block_at(straight / "ledger")
    assert report["runs"] == 2
    assert report["partial_days"] == []
    assert report["blocks"] == 2 * BLOCKS_PER_DAY
    saved = progress.load(tmp_path)
    assert saved is not None
    assert [(f.day, f.blocks, f.run) for f in saved.day_log] == [
        (0, BLOCKS_PER_DAY, 1),
        (1, BLOCKS_PER_DAY, 2),
    ]


def test_a_run_stopped_in_mid_day_is_caught_up_without_committing_twice(
    tmp_path: Path, straight: Path
) -> None:
    run(2, 1, tmp_path, do_replay=False)
    _stop_in_day(tmp_path, 1, 50)
    assert block_at(tmp_path / "ledger")[0] == BLOCKS_PER_DAY + 50
    report = run(2, 2, tmp_path, do_replay=True, resume=True)
    assert block_at(tmp_path / "ledger") == block_at(straight / "ledger")
    assert report["partial_days"] == [1]
    saved = progress.load(tmp_path)
    assert saved is not None
    assert saved.day_log[1].blocks == BLOCKS_PER_DAY - 50
    assert report["replay"]["blocks"] == report["replay"]["timed_blocks"] == 2 * BLOCKS_PER_DAY


def test_a_progress_file_that_is_not_the_ledgers_is_refused(tmp_path: Path) -> None:
    run(2, 1, tmp_path, do_replay=False)
    _stop_in_day(tmp_path, 1, 5)
    saved = progress.load(tmp_path)
    assert saved is not None
    first = saved.generator.households[0]
    moved = saved.generator.model_copy(
        update={
            "households": (
                first.model_copy(update={"nonce": first.nonce + 1}),
                *saved.generator.households[1:],
            )
        }
    )
    progress.save(tmp_path, saved.model_copy(update={"generator": moved}))
    with pytest.raises(RuntimeError, match="do not belong together"):
        run(2, 2, tmp_path, do_replay=False, resume=True)
    assert block_at(tmp_path / "ledger")[0] == BLOCKS_PER_DAY + 5  # nothing committed


def test_what_cannot_go_on_stops_before_playing(tmp_path: Path) -> None:
    with pytest.raises(progress.ProgressError, match="no play"):
        run(2, 1, tmp_path, do_replay=False, resume=True)
    run(2, 1, tmp_path, do_replay=False)
    with pytest.raises(progress.ProgressError, match="holds a play already"):
        run(2, 2, tmp_path, do_replay=False)
    with pytest.raises(progress.ProgressError, match="has 2 households"):
        run(3, 2, tmp_path, do_replay=False, resume=True)
    (tmp_path / progress.PROGRESS_FILE).write_text('{"format": 1, "households": "two"}')
    with pytest.raises(progress.ProgressError, match="not a bench state progress file"):
        run(2, 2, tmp_path, do_replay=False, resume=True)
    assert block_at(tmp_path / "ledger")[0] == BLOCKS_PER_DAY


def test_a_stopped_replay_goes_on_from_itsblock_at(tmp_path: Path, straight: Path) -> None:
    class StoppedError(Exception):
        pass

    def stop(height: int, blocks: int, seconds: float, cpu: float) -> None:
        assert blocks == height == 40
        raise StoppedError

    people = community(2)
    source = Store(straight / "ledger")
    try:
        with pytest.raises(StoppedError):
            replay(people.bundle.genesis, source, tmp_path, on_progress=stop, progress_every=40)
        rest = replay(people.bundle.genesis, source, tmp_path)
    finally:
        source.close()
    assert rest.blocks == 2 * BLOCKS_PER_DAY - 40
    assert block_at(tmp_path) == block_at(straight / "ledger")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resume"], "--resume needs --data-dir"),
        (["--resume", "--end-now", "--data-dir", "."], "drop --end-now"),
        (["--households", "0"], "at least 1"),
    ],
)
def test_the_command_line_refuses_what_cannot_run(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_the_command_line_goes_on_with_the_play_in_its_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["--households", "2", "--days", "1", "--no-replay", "--data-dir", str(tmp_path)]) == 0
    )
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--households", "3", "--days", "2", "--resume", "--data-dir", str(tmp_path)])
    assert "has 2 households" in capsys.readouterr().err
    assert main(["--days", "2", "--no-replay", "--resume", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "played in 2 runs" in out.out
    assert "day 2 of 2" in out.err
    assert block_at(tmp_path / "ledger")[0] == 2 * BLOCKS_PER_DAY
