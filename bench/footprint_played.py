"""bench footprint on a ledger bench state played (``--played DIR``): the simulated year's.

Why: the footprint's goal is "after the simulated year", and a year is hours of play that
``gridchain bench state`` does across processes (its progress file, bench/state_progress.py).
The footprint bench must measure the processes on THAT ledger, not on one it plays itself, and
must leave the play in DIR as usable as it found it.  Three steps:

1. **Top up** (``top_up``): a play made with ``--end-now`` ends just before the time it
   started; measured hours or days later, its last block is that old, and a validator started
   on it would settle and prune the whole gap in its first blocks, which the idle window would
   measure.  A validator that was offline catches up before it rests; so does this one: the
   play in DIR goes on (a normal resumed run, its progress saved after every whole day) to the
   last whole day that ended before now, then within the day to the last block whose time has
   passed.  Those last blocks are past the progress file's day, as a run stopped in mid-day
   leaves them; a later ``bench state --resume`` generates them again, checks them against the
   stored ones and goes on (the path bench state already has for a stopped run).  So the head
   is at most about 5 minutes old (the longest gap of the play's schedule), as a live
   chain's.  A play whose head is in the future (``--compare-fresh`` plays a day past an
   ``--end-now`` play's end) is refused until that time has come.  A gap above
   ``max_days`` is refused: it means the play is not finished, not that it is old.
2. **Clone** (``clone_ledger``): the validator must not write into DIR (its own blocks, the
   bridge's readings, are not the generator's, and a later resume would find blocks it cannot
   make again).  A year's ledger is gigabytes, so it is not copied: LevelDB never changes a
   table file (``*.ldb``) once written, it only deletes it, so the clone hard-links every table
   file and copies the rest (the write-ahead log, the manifest, CURRENT; a few MB).  The
   validator's compactions write new tables and unlink old names in the clone only; DIR keeps
   its own links.  Both directories are on one file system (the clone is made inside DIR, in
   a hidden directory removed at the end).  While the clone is made, DIR's LevelDB lock files
   are held, so no other process writes DIR meanwhile.
3. **The gateway**: bench state's community has one solo validator, and names a gateway in
   genesis only when played with ``--gateway``.  Without one, the chain cannot get one: the
   application refuses ``UpdateGateways`` on a solo chain without genesis gateways
   (``gateway_change_unsupported``: it runs no peer network to link them), so the bench
   measures the validator and the bridge and says why there is no gateway.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from gridchain.bench import state_progress as progress
from gridchain.bench.state import (
    BLOCKS_PER_DAY,
    DAY_MS,
    SLOT_MS,
    PlayedBlock,
    PlaySession,
    block_times_ms,
    play,
)

#: A top-up longer than this is refused by default: the play in DIR is unfinished, not old.
MAX_TOP_UP_DAYS = 7
#: LevelDB files that never change once written: hard-linked, not copied.
TABLE_SUFFIXES = (".ldb", ".sst")


@dataclass(frozen=True)
class TopUp:
    households: int
    genesis_time_ms: int
    #: whole days the progress file had before and has after
    days_before: int
    days_after: int
    #: the ledger's head before and after (blocks past the last whole day: ``partial_blocks``)
    height_before: int
    height_after: int
    partial_blocks: int
    head_time_ms: int
    live_state_entries: int
    #: gateways the play's genesis names (bench state --gateway)
    gateways: int
    seconds: float


def whole_days_before(genesis_time_ms: int, now_ms: int) -> int:
    """How many played days (``play``'s: 96 slots from the first slot after genesis) ended
    before ``now_ms``."""
    first_slot_ms = (genesis_time_ms // SLOT_MS + 1) * SLOT_MS
    return max(0, (now_ms - first_slot_ms) // DAY_MS)


def top_up(directory: Path, now_ms: int, *, max_days: int = MAX_TOP_UP_DAYS) -> TopUp:
    """Go on with the play in ``directory`` to the last block whose time is before ``now_ms``:
    whole days as a resumed run plays them (progress saved), then the blocks of the day under
    way (not in the progress file, as a run stopped in mid-day leaves them)."""
    saved = progress.load(directory)
    if saved is None:
        raise progress.ProgressError(f"{directory} holds no bench state play")
    days = whole_days_before(saved.genesis_time_ms, now_ms)
    if days - saved.played_days > max_days:
        raise progress.ProgressError(
            f"the play in {directory} has played {saved.played_days} days and {days} have "
            f"passed since its genesis: finish it first (bench state --resume), or allow a "
            f"longer top-up"
        )
    began = time.perf_counter()
    session = PlaySession(
        saved.households,
        max(days, saved.played_days),
        directory,
        resume=True,
        genesis_time_ms=saved.genesis_time_ms,
        gateways=saved.gateways,
    )
    try:
        height_before = session.ledger.height
        stored = session.ledger.store.get_block(height_before)
        if stored is not None and stored.block.header.timestamp_ms > now_ms:
            raise progress.ProgressError(
                f"the play in {directory} is ahead of now (its last block is "
                f"{(stored.block.header.timestamp_ms - now_ms) / 3_600_000:.1f} h in the "
                "future, e.g. after --compare-fresh): a validator cannot rest on it until then"
            )
        for _ in session.played():
            pass
        day = session.days
        times = block_times_ms(saved.genesis_time_ms, day)
        due = day * BLOCKS_PER_DAY + sum(1 for t in times if t < now_ms)
        ledger = session.ledger
        if ledger.height < due:  # the day under way, up to now; a stored part is checked
            blocks: Generator[PlayedBlock, None, None] = play(
                session.bundle, session.people, ledger, day + 1, first_day=day
            )
            while ledger.height < due:
                next(blocks)
            blocks.close()
        height = ledger.height
        head = ledger.store.get_block(height)
        head_time = saved.genesis_time_ms if head is None else head.block.header.timestamp_ms
        entries = len(ledger.state)
    finally:
        session.close()
    return TopUp(
        households=saved.households,
        genesis_time_ms=saved.genesis_time_ms,
        days_before=saved.played_days,
        days_after=session.days,
        height_before=height_before,
        height_after=height,
        partial_blocks=height - session.days * BLOCKS_PER_DAY,
        head_time_ms=head_time,
        live_state_entries=entries,
        gateways=saved.gateways,
        seconds=round(time.perf_counter() - began, 1),
    )


@dataclass(frozen=True)
class Clone:
    linked_files: int
    linked_bytes: int
    copied_files: int
    copied_bytes: int


@contextmanager
def _leveldb_locks(ledger: Path) -> Iterator[None]:
    """Hold the LOCK of every LevelDB under ``ledger`` (LevelDB's own fcntl lock): no other
    process opens them for writing meanwhile (it would fail to open, not corrupt the clone)."""
    with ExitStack() as stack:
        for lock in sorted(ledger.rglob("LOCK")):
            f = stack.enter_context(lock.open("r+b"))
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                raise progress.ProgressError(
                    f"{lock.parent} is open in another process (bench state still playing?)"
                ) from exc
            stack.callback(fcntl.lockf, f, fcntl.LOCK_UN)
        yield


def clone_ledger(source: Path, target: Path) -> Clone:
    """A LevelDB ledger (both databases) at ``target`` that shares ``source``'s table files by
    hard links and has its own copies of everything LevelDB appends to or replaces."""
    linked = [0, 0]
    copied = [0, 0]
    with _leveldb_locks(source):
        for folder, _, files in os.walk(source):
            here = Path(folder)
            out = target / here.relative_to(source)
            out.mkdir(parents=True, exist_ok=True)
            for name in files:
                if name == "LOCK":  # LevelDB makes its own
                    continue
                size = (here / name).stat().st_size
                if name.endswith(TABLE_SUFFIXES):
                    os.link(here / name, out / name)
                    linked[0] += 1
                    linked[1] += size
                else:
                    shutil.copy2(here / name, out / name)
                    copied[0] += 1
                    copied[1] += size
    return Clone(linked[0], linked[1], copied[0], copied[1])
