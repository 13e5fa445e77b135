"""An aged ledger against a fresh one, measured in one process under the same conditions.

Why: ``gridchain bench state`` prints last/first, the last day's mean ms per block over the
first day's, and over a year the two days are measured hours or sessions apart: on this shared
machine a week on a quiet machine gave 1.352, 0.86 and 0.973 in three back-to-back runs.  The
machine's load moved more than the ledger's age did.  This comparison asks the question
directly: with the same code, in the same process, at the same moments, does a block on the
aged ledger cost more than a block on a new one?

What it does (``gridchain bench state --data-dir DIR --resume --compare-fresh``):

* the **aged side** is the play in DIR going on for ``--compare-days`` more days: a normal
  resumed run (``PlaySession``: the progress file saved after each day, the day's figures in
  its log), so the year's ledger just gets older;
* the **fresh side** plays the first ``--compare-days`` days of the same community (same
  genesis, same generator from genesis, same ``play``, ``Ledger``, ``Application`` and
  ``Store``) on a new ledger in a temporary directory;
* the two are **interleaved block by block**, one aged block and one fresh block, the order
  swapped every pair (aged-fresh, fresh-aged, ...), so a change of the machine's load, and
  whatever the first of a pair leaves warm, falls on both alike;
* per block kind (readings, orders, quiet) and overall it prints the median and mean wall ms,
  process CPU ms and this thread's CPU ms of each side and aged/fresh of each; and each
  ledger's own LevelDB compaction work during the comparison, read from LevelDB's tables.

What it controls and what it does not:

* Controlled: the machine's load and frequency over time (both sides see the same minutes),
  the code, the generator's work (the same transactions' shape; not counted in a block's
  time), Python's and the C library's state of the process (shared).
* **Compactions run on one background thread for both** (LevelDB's default environment has
  one per process): a compaction that one side's writes caused may run while the other side's
  block is timed, and the process CPU of a block counts whatever that thread did meanwhile.
  So the process CPU and wall figures are mixed; the thread CPU figures (the block's own
  build and commit on the main thread) are not, and each ledger's compaction seconds and MB
  are attributed from its own ``leveldb.stats`` (whole seconds and MB per level, as LevelDB
  rounds them: meaningful over a day, not per block).  The compaction thread's CPU time is
  measured exactly (the process's CPU minus the main thread's over the comparison) and shared
  between the ledgers by the MB each one's compactions read and wrote (whole MB, fine enough
  over a day where whole seconds are not).  The figure that puts them together is "own cost":
  main-thread CPU per block plus that ledger's share of the compaction thread's CPU.
* Not controlled: the **page cache**.  The aged ledger's history is gigabytes after a year,
  the fresh one's megabytes; the aged side's compactions may read history tables from disk
  when they do not fit in memory (the memory available is printed).  A validator on an old
  ledger pays that too, so it belongs to the age, but the figure then depends on this
  machine's memory and what the other processes hold.
* Not controlled: the fresh side's first blocks are its chain's first (an empty state, an
  empty book until the first orders arrive); that is what "the first day" meant in
  last/first.  Two ledgers write at once, so each side's compactions run about as often as
  alone but wait longer for the one thread.
* Not measured: the replay.

Timings are measured, never asserted in tests; the tests check that the aged side ends where an
uninterrupted play would, that the fresh side is a fresh run's first days, and the report's
shape.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridchain.bench import state_progress as progress
from gridchain.bench.conditions import conditions
from gridchain.bench.state import (
    BLOCK_KINDS,
    BLOCKS_PER_DAY,
    Ledger,
    PlayedBlock,
    PlaySession,
    _du,
    block_kind,
    community,
    play,
)

#: What each figure is called in the report, and which ``PlayedBlock`` field it reads.
FIGURES = (("wall_ms", "wall_ms"), ("cpu_ms", "cpu_ms"), ("thread_cpu_ms", "thread_cpu_ms"))


@dataclass(frozen=True)
class Compactions:
    """LevelDB's totals over every level of one database (``leveldb.stats``)."""

    seconds: float = 0.0
    read_mb: float = 0.0
    written_mb: float = 0.0

    @classmethod
    def parse(cls, table: str) -> Compactions:
        seconds = read = written = 0.0
        rows = table.splitlines()
        start = next((i + 1 for i, row in enumerate(rows) if row.startswith("---")), len(rows))
        for row in rows[start:]:
            cells = row.split()
            if len(cells) == 6 and cells[0].isdigit():
                seconds += float(cells[3])
                read += float(cells[4])
                written += float(cells[5])
        return cls(seconds, read, written)

    def __sub__(self, other: Compactions) -> Compactions:
        return Compactions(
            self.seconds - other.seconds,
            self.read_mb - other.read_mb,
            self.written_mb - other.written_mb,
        )


def compactions_of(ledger: Ledger) -> dict[str, Compactions]:
    """Each of ``ledger``'s two LevelDBs' compaction totals so far."""
    return {name: Compactions.parse(t) for name, t in ledger.store.leveldb_stats().items()}


@dataclass
class _Side:
    name: str
    ledger: Ledger
    blocks: Iterator[PlayedBlock]
    rows: list[PlayedBlock] = field(default_factory=list)
    done: bool = False
    before: dict[str, Compactions] = field(default_factory=dict)

    def step(self) -> bool:
        """Play one block; False once this side has played all its days."""
        if not self.done:
            block = next(self.blocks, None)
            if block is None:
                self.done = True
            else:
                self.rows.append(block)
        return not self.done


def _summary(rows: list[PlayedBlock]) -> dict[str, Any]:
    out: dict[str, Any] = {"blocks": len(rows)}
    for name, attr in FIGURES:
        values = [float(getattr(r, attr)) for r in rows]
        out[name] = {
            "median": round(statistics.median(values), 3) if values else 0.0,
            "mean": round(statistics.fmean(values), 3) if values else 0.0,
        }
    return out


def _ratio(aged: float, fresh: float) -> float | None:
    return round(aged / fresh, 3) if fresh > 0 else None


def _kinds(aged: list[PlayedBlock], fresh: list[PlayedBlock]) -> dict[str, Any]:
    out = {}
    for kind in (*BLOCK_KINDS, "all"):
        a = [r for r in aged if kind in ("all", block_kind(r.height))]
        f = [r for r in fresh if kind in ("all", block_kind(r.height))]
        sa, sf = _summary(a), _summary(f)
        ratios = {
            name: {stat: _ratio(sa[name][stat], sf[name][stat]) for stat in ("median", "mean")}
            for name, _ in FIGURES
        }
        out[kind] = {"aged": sa, "fresh": sf, "aged_over_fresh": ratios}
    return out


def _mem_available_mib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _spent(side: _Side) -> dict[str, Compactions]:
    after = compactions_of(side.ledger)
    return {name: after[name] - side.before[name] for name in after}


def _mb_moved(spent: dict[str, Compactions]) -> float:
    return sum(c.read_mb + c.written_mb for c in spent.values())


def _ledger_figures(
    side: _Side, path: Path, spent: dict[str, Compactions], background_share_s: float
) -> dict[str, Any]:
    seconds = sum(c.seconds for c in spent.values())
    blocks = len(side.rows)
    thread_ms = statistics.fmean(r.thread_cpu_ms for r in side.rows) if side.rows else 0.0
    compaction_ms = 1000 * seconds / blocks if blocks else 0.0
    background_ms = 1000 * background_share_s / blocks if blocks else 0.0
    total = _du(path)
    history = _du(side.ledger.store.history_path)
    return {
        "height": side.ledger.height,
        "live_state_entries": len(side.ledger.state),
        "ledger_bytes": total,
        "live_bytes": total - history,
        "history_bytes": history,
        "compactions": {
            name: {
                "seconds": c.seconds,
                "read_mb": c.read_mb,
                "written_mb": c.written_mb,
            }
            for name, c in spent.items()
        },
        "compaction_ms_per_block": round(compaction_ms, 3),
        "background_cpu_ms_per_block": round(background_ms, 3),
        "own_cost_ms_per_block": round(thread_ms + background_ms, 3),
    }


def compare_fresh(directory: Path, days: int, scratch: Path) -> dict[str, Any]:
    """Go on with the play in ``directory`` for ``days`` and play the community's first
    ``days`` on a new ledger in ``scratch``, one block each in turn; the report."""
    if days < 1:
        raise ValueError("the comparison plays at least one day")
    saved = progress.load(directory)
    if saved is None:
        raise progress.ProgressError(f"{directory} holds no play to compare with a fresh one")
    session = PlaySession(
        saved.households,
        saved.played_days + days,
        directory,
        resume=True,
        genesis_time_ms=saved.genesis_time_ms,
        gateways=saved.gateways,
    )
    session.compared = True
    try:
        aged_from = session.ledger.height
        people = community(
            saved.households, gateways=saved.gateways, genesis_time_ms=saved.genesis_time_ms
        )
        fresh_ledger = Ledger.open(people.bundle.genesis, scratch / "ledger")
        try:
            aged = _Side("aged", session.ledger, session.played())
            fresh = _Side("fresh", fresh_ledger, play(people.bundle, people, fresh_ledger, days))
            for side in (aged, fresh):
                side.before = compactions_of(side.ledger)
            load_before = round(os.getloadavg()[0], 2)
            began = time.perf_counter()
            began_cpu, began_thread = time.process_time(), time.thread_time()
            turn = 0
            while not (aged.done and fresh.done):
                pair = (aged, fresh) if turn % 2 == 0 else (fresh, aged)
                for side in pair:
                    side.step()
                turn += 1
            seconds = time.perf_counter() - began
            # every thread but this one: LevelDB's compaction thread, for both ledgers
            background_s = (time.process_time() - began_cpu) - (time.thread_time() - began_thread)
            spent = {side.name: _spent(side) for side in (aged, fresh)}
            moved = {name: _mb_moved(s) for name, s in spent.items()}
            total_mb = sum(moved.values())
            share = {n: m / total_mb if total_mb else 0.5 for n, m in moved.items()}
            aged_figures = _ledger_figures(
                aged, session.ledger_path, spent["aged"], background_s * share["aged"]
            )
            fresh_figures = _ledger_figures(
                fresh, scratch / "ledger", spent["fresh"], background_s * share["fresh"]
            )
        finally:
            fresh_ledger.store.close()
    finally:
        session.close()
    own = _ratio(aged_figures["own_cost_ms_per_block"], fresh_figures["own_cost_ms_per_block"])
    return {
        "households": saved.households,
        "compare_days": days,
        "aged": {
            "age_days": round(aged_from / BLOCKS_PER_DAY, 3),
            "from_height": aged_from,
            "played_days_after": session.days,
            **aged_figures,
        },
        "fresh": {"days": days, **fresh_figures},
        "kinds": _kinds(aged.rows, fresh.rows),
        "own_cost_aged_over_fresh": own,
        "background_cpu_s": round(background_s, 2),
        "background_share": {n: round(v, 3) for n, v in share.items()},
        "seconds": round(seconds, 1),
        "order": "one aged and one fresh block in turn, the first of each pair swapped",
        "conditions": {
            **conditions(),
            "load_avg_1m_before": load_before,
            "mem_available_mib": _mem_available_mib(),
        },
    }


def format_compare(r: dict[str, Any]) -> list[str]:
    aged, fresh = r["aged"], r["fresh"]
    lines = [
        f"{r['households']} households: {r['compare_days']} day(s) on the aged ledger (age "
        f"{aged['age_days']} days, from block {aged['from_height']:,}) against the first "
        f"{fresh['days']} day(s) on a fresh one, interleaved block by block in one process "
        f"({r['seconds']} s)",
        f"{'kind':<9} {'figure':<14} {'aged med':>9} {'fresh med':>9} {'ratio':>6} "
        f"{'aged mean':>9} {'fresh mean':>10} {'ratio':>6}",
    ]
    for kind, row in r["kinds"].items():
        for name, _ in FIGURES:
            a, f = row["aged"][name], row["fresh"][name]
            ratio = row["aged_over_fresh"][name]
            lines.append(
                f"{kind:<9} {name:<14} {a['median']:>9.2f} {f['median']:>9.2f} "
                f"{_show(ratio['median']):>6} {a['mean']:>9.2f} {f['mean']:>10.2f} "
                f"{_show(ratio['mean']):>6}"
            )
    for name, side in (("aged", aged), ("fresh", fresh)):
        comp = side["compactions"]
        lines.append(
            f"{name}: {side['live_state_entries']:,} live entries, ledger "
            f"{side['ledger_bytes'] / 1e6:.1f} MB (live {side['live_bytes'] / 1e6:.1f}, history "
            f"{side['history_bytes'] / 1e6:.1f}); its compactions "
            + ", ".join(
                f"{db} {c['seconds']:.0f} s {c['read_mb']:.0f}/{c['written_mb']:.0f} MB r/w"
                for db, c in comp.items()
            )
            + f" ({side['compaction_ms_per_block']} ms per block); its share of the "
            f"compaction thread's CPU {side['background_cpu_ms_per_block']} ms per block; own "
            f"cost {side['own_cost_ms_per_block']} ms per block"
        )
    cond = r["conditions"]
    lines += [
        f"compaction thread: {r['background_cpu_s']} s CPU, shared by MB moved "
        f"{r['background_share']}; own cost (main-thread CPU + that share) aged/fresh: "
        + _show(r["own_cost_aged_over_fresh"]),
        f"order: {r['order']}; load {cond['load_avg_1m_before']} -> {cond['load_avg_1m']}, "
        f"{cond['mem_available_mib']} MiB available for the page cache",
        "wall and process CPU include the other side's compactions (one LevelDB thread); "
        "thread CPU and own cost do not (docs/state.md)",
    ]
    return lines


def _show(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.3f}"
