"""A ``bench state --replay-beside`` play killed outright leaves no replaying process behind.

Why: the replaying process holds its ledger's lock.  A play killed with SIGKILL (or by a
session or a device that ends) runs no cleanup; if its replaying process stayed, blocked on a
queue nobody writes to any more, the next ``--resume`` could not open the replay's ledger.  The
replaying process checks that the play is still there whenever it has nothing to do; the test
kills a real play and then goes on with it, replay and all.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from gridchain.bench.state import BLOCKS_PER_DAY, run
from gridchain.bench.state_beside import PARENT_CHECK_S
from tests.procs import GridchainChild, wait_until

pytestmark = pytest.mark.integration


def _children(parent: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _replaying(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"spawn_main" in cmdline


def _replayed_height(directory: Path) -> int:
    try:
        saved = json.loads((directory / "progress.json").read_text())
    except (OSError, ValueError):
        return 0
    replay = saved.get("replay") or {}
    return int(replay.get("height", 0))


def test_a_killed_play_leaves_no_replaying_process_and_goes_on(tmp_path: Path) -> None:
    play = GridchainChild(
        [
            *("bench", "state", "--households=2", "--days=60", "--replay-beside"),
            f"--data-dir={tmp_path}",
        ],
        tmp_path.parent / f"{tmp_path.name}-bench.log",
    )
    try:
        wait_until(lambda: _replayed_height(tmp_path) >= BLOCKS_PER_DAY, 120, "a replayed day")
        replaying = [pid for pid in _children(play.proc.pid) if _replaying(pid)]
        assert len(replaying) == 1
        play.proc.send_signal(signal.SIGKILL)
        play.proc.wait(timeout=10)
    finally:
        play.stop()
    # Its replaying process sees the play gone and stops (gone, or a zombie of whoever
    # adopted it), releasing its ledger.
    wait_until(lambda: not _running(replaying[0]), 5 * PARENT_CHECK_S + 10, "the replay to stop")
    # The play goes on, and its replay with it, from where each stopped.
    saved = json.loads((tmp_path / "progress.json").read_text())
    report = run(
        2,
        saved["played_days"] + 1,
        tmp_path,
        do_replay=True,
        resume=True,
        replay_beside=True,
    )
    assert report["replay"]["blocks"] == report["blocks"]
    assert report["replay"]["beside_runs"] == 2
