"""bench footprint's use of a bench state play (``--played``): top-up and clone.

Why: the footprint after the simulated year must run on the year's own ledger without
spoiling it: the top-up must be the play an uninterrupted run makes (so a later ``bench state
--resume`` goes on), and the clone the validator writes into must share the play's table
files without letting a single write reach them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import plyvel
import pytest

from gridchain.bench import state_progress as progress
from gridchain.bench.footprint_played import clone_ledger, top_up, whole_days_before
from gridchain.bench.state import (
    BLOCKS_PER_DAY,
    DAY_MS,
    GENESIS_TIME_MS,
    SLOT_MS,
    Ledger,
    block_times_ms,
    community,
    play,
    run,
)
from gridchain.protocol.crypto import sha256
from tests.unit.bench.played import block_at

#: bench state's default genesis, the ``straight`` fixture's (a whole number of slots); the
#: tests pass their own "now", so no clock is read.
GENESIS_MS = GENESIS_TIME_MS


def test_whole_days_count_from_the_first_slot() -> None:
    first_slot_ms = GENESIS_MS + SLOT_MS
    assert whole_days_before(GENESIS_MS, first_slot_ms + DAY_MS - 1) == 0
    assert whole_days_before(GENESIS_MS, first_slot_ms + DAY_MS) == 1
    assert whole_days_before(GENESIS_MS, GENESIS_MS) == 0
    # day 0's last block is before the next day's first slot starts
    assert block_times_ms(GENESIS_MS, 0)[-1] < first_slot_ms + DAY_MS


def test_a_top_up_plays_to_now_and_a_later_resume_goes_on(tmp_path: Path, straight: Path) -> None:
    run(2, 1, tmp_path, do_replay=False, genesis_time_ms=GENESIS_MS)
    # now: 40 minutes into day 1 (blocks at +30 s, +5 min, +10 min of each 15-minute slot)
    now_ms = GENESIS_MS + SLOT_MS + DAY_MS + 40 * 60_000
    topped = top_up(tmp_path, now_ms)
    day_1 = block_times_ms(GENESIS_MS, 1)
    due = sum(1 for t in day_1 if t < now_ms)
    assert due == 8  # two slots and two blocks of the third
    assert (topped.days_before, topped.days_after, topped.partial_blocks) == (1, 1, due)
    assert topped.height_after == BLOCKS_PER_DAY + due
    assert topped.head_time_ms == day_1[due - 1] < now_ms
    saved = progress.load(tmp_path)
    assert saved is not None
    assert saved.played_days == 1  # the day under way is not in the progress file
    report = run(2, 2, tmp_path, do_replay=False, resume=True, genesis_time_ms=GENESIS_MS)
    assert report["partial_days"] == [1]
    assert block_at(tmp_path / "ledger") == block_at(straight / "ledger")


def test_a_top_up_of_whole_days_saves_them(tmp_path: Path, straight: Path) -> None:
    run(2, 1, tmp_path, do_replay=False, genesis_time_ms=GENESIS_MS)
    now_ms = GENESIS_MS + SLOT_MS + 2 * DAY_MS  # day 1 over, day 2 not begun
    topped = top_up(tmp_path, now_ms)
    assert (topped.days_after, topped.partial_blocks) == (2, 0)
    assert block_at(tmp_path / "ledger") == block_at(straight / "ledger")
    saved = progress.load(tmp_path)
    assert saved is not None
    assert saved.played_days == 2


def test_a_play_far_behind_now_or_ahead_of_it_is_refused_before_playing(tmp_path: Path) -> None:
    run(2, 1, tmp_path, do_replay=False, genesis_time_ms=GENESIS_MS)
    with pytest.raises(progress.ProgressError, match="finish it first"):
        top_up(tmp_path, GENESIS_MS + 30 * DAY_MS, max_days=7)
    with pytest.raises(progress.ProgressError, match="ahead of now"):
        top_up(tmp_path, GENESIS_MS + DAY_MS // 2)
    assert block_at(tmp_path / "ledger")[0] == BLOCKS_PER_DAY


def test_writes_to_a_clone_never_reach_the_played_ledger(tmp_path: Path, straight: Path) -> None:
    played = tmp_path / "played"
    played.mkdir()
    run(2, 1, played, do_replay=False, genesis_time_ms=GENESIS_MS)
    before = block_at(played / "ledger")
    clone = clone_ledger(played / "ledger", tmp_path / "clone")
    assert clone.linked_files >= 1
    tables = sorted((played / "ledger").rglob("*.ldb"))
    assert tables
    contents = {t: sha256(t.read_bytes()) for t in tables}
    for table in tables:
        twin = tmp_path / "clone" / table.relative_to(played / "ledger")
        assert os.path.samefile(table, twin)  # shared, not copied
    assert not (tmp_path / "clone" / "LOCK").exists()
    # a validator's blocks on the clone: another day, its compactions included
    saved = progress.load(played)
    assert saved is not None
    people = community(2, genesis_time_ms=GENESIS_MS)
    progress.restore(people, saved.generator)
    ledger = Ledger.open(people.bundle.genesis, tmp_path / "clone")
    try:
        for _ in play(people.bundle, people, ledger, 2, first_day=1):
            pass
    finally:
        ledger.store.close()
    assert {t: sha256(t.read_bytes()) for t in tables} == contents
    assert block_at(tmp_path / "clone") == block_at(straight / "ledger")
    assert block_at(played / "ledger") == before
    report = run(2, 2, played, do_replay=False, resume=True, genesis_time_ms=GENESIS_MS)
    assert report["blocks"] == 2 * BLOCKS_PER_DAY
    assert block_at(played / "ledger") == block_at(straight / "ledger")


def test_a_ledger_open_in_another_process_is_not_cloned(tmp_path: Path) -> None:
    run(2, 1, tmp_path, do_replay=False, genesis_time_ms=GENESIS_MS)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from gridchain.node.store import Store; "
            "s = Store(__import__('pathlib').Path(sys.argv[1])); print('open', flush=True); "
            "time.sleep(60)",
            str(tmp_path / "ledger"),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"open"
        with pytest.raises(progress.ProgressError, match="open in another process"):
            clone_ledger(tmp_path / "ledger", tmp_path / "clone")
    finally:
        holder.kill()
        holder.wait()
    assert clone_ledger(tmp_path / "ledger", tmp_path / "clone2").linked_files >= 1


def test_a_table_the_clone_rewrites_and_deletes_stays_in_the_source(tmp_path: Path) -> None:
    """LevelDB's side of the clone: tables are never changed in place, only written anew and
    unlinked, so a compaction in the clone that drops every table it shared leaves the
    source's tables and values as they were."""
    source = plyvel.DB(str(tmp_path / "source"), create_if_missing=True)
    for i in range(2000):
        source.put(b"k%05d" % i, b"old" * 50)
    source.compact_range()
    source.close()
    tables = sorted((tmp_path / "source").glob("*.ldb"))
    assert tables
    contents = {t.name: sha256(t.read_bytes()) for t in tables}
    clone_ledger(tmp_path / "source", tmp_path / "clone")
    clone = plyvel.DB(str(tmp_path / "clone"))
    for i in range(2000):
        clone.put(b"k%05d" % i, b"new" * 50)
    clone.compact_range(start=b"k", stop=b"l")  # merges every level the keys are in
    clone.close()
    assert not any((tmp_path / "clone" / t.name).exists() for t in tables)
    assert {t.name: sha256(t.read_bytes()) for t in tables} == contents
    source = plyvel.DB(str(tmp_path / "source"))
    try:
        assert source.get(b"k01999") == b"old" * 50
    finally:
        source.close()
