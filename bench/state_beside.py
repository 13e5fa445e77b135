"""The replay of a ``bench state`` play in a second process, block by block as the play commits.

Why: the replay of a 200-household year takes about as long as its play (hours each).  Played
first and replayed after, the two are one core's work twice over; on a machine with two cores
the replay can run beside the play, a block behind it, and end about when the play ends.  Each
block is replayed exactly as :func:`gridchain.bench.state.replay` replays it
(:func:`~gridchain.bench.state.replay_block`: certificate, structure, every signature once,
execution, root against the header), on its own ledger in its own process.

What is timed is each block's own work in the replaying process: reading the block's bytes,
decoding, checking, executing and committing it (its wall and that process's CPU time).  The
waits for the play's next block are not counted, so the sum is the time a validator that
fetches the year's blocks would spend replaying them, on a core shared with the play.

The play hands the replay the stored bytes of each committed block through a bounded queue and
never waits for it: when the queue is full the play goes on, and the blocks not yet handed
over are read from the play's ledger later.  So a replay that starts behind (a play resumed
with ``--replay-beside`` part way through) catches up while the play goes on, and the end of
the play waits only for what is left.  A replaying process that fails (a block that does not
replay, a ledger that is not this chain's) says why, and the play stops with that error.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Final, NamedTuple, Protocol

from gridchain.bench.state import BLOCKS_PER_DAY, close_replay, open_replay, replay_block
from gridchain.genesis.schema import Genesis, parse_genesis
from gridchain.protocol.block import decode_committed

#: Blocks handed over and not yet replayed, at most (a day of 200 households' blocks is about
#: 30 MB; 64 blocks keep the replay busy without holding much of it in memory twice).
QUEUE_BLOCKS: Final = 64
#: How long the replaying process may take to open its ledger and say where it is.
READY_TIMEOUT_S: Final = 120.0
#: How often a replaying process with nothing to do checks that the play is still there (a
#: play killed outright cannot stop it, and it holds its ledger's lock).
PARENT_CHECK_S: Final = 2.0

#: (height, blocks replayed by this process, their seconds, their CPU seconds)
ProgressCallback = Callable[[int, int, float, float], None]


class ReplayFigures(NamedTuple):
    """Where the replaying process is, and what the blocks it replayed cost it."""

    height: int
    blocks: int
    seconds: float
    cpu_seconds: float


class BlockSource(Protocol):
    """What the replay reads of the play's ledger (a node/store.py ``Store``)."""

    def head_height(self) -> int: ...

    def get_block_raw(self, height: int) -> bytes | None: ...


class ReplayBesideError(RuntimeError):
    """The replaying process failed or stopped: its reason, or its exit code."""


def _replaying(
    genesis_json: bytes,
    path: str,
    verify_workers: int,
    blocks: multiprocessing.Queue[bytes | None],
    reports: multiprocessing.Queue[tuple[object, ...]],
) -> None:
    """The replaying process: open the ledger, say its height, replay what arrives until None.

    Reports: ``("ready", height)``, then ``("progress", ReplayFigures)`` after each whole day
    and ``("done", ReplayFigures)`` at the end, or ``("error", height, reason)``.
    """
    genesis = parse_genesis(genesis_json)
    try:
        ledger = open_replay(genesis, Path(path), verify_workers)
    except Exception as exc:  # noqa: BLE001 - said to the play, which stops with it
        reports.put(("error", 0, f"{type(exc).__name__}: {exc}"))
        return
    count, seconds, cpu = 0, 0.0, 0.0
    parent = multiprocessing.parent_process()
    try:
        reports.put(("ready", ledger.height))
        while True:
            try:
                raw = blocks.get(timeout=PARENT_CHECK_S)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return  # the play was killed: stop, the ledger holds what was committed
                continue
            if raw is None:
                break
            began, began_cpu = time.perf_counter(), time.process_time()
            replay_block(genesis, ledger, decode_committed(raw))
            seconds += time.perf_counter() - began
            cpu += time.process_time() - began_cpu
            count += 1
            if ledger.height % BLOCKS_PER_DAY == 0:
                reports.put(("progress", ReplayFigures(ledger.height, count, seconds, cpu)))
        reports.put(("done", ReplayFigures(ledger.height, count, seconds, cpu)))
    except Exception as exc:  # noqa: BLE001 - said to the play, which stops with it
        reports.put(("error", ledger.height, f"{type(exc).__name__}: {exc}"))
    finally:
        close_replay(ledger)


class ReplayBeside:
    """The play's side: starts the replaying process and hands it each committed block."""

    def __init__(
        self,
        genesis: Genesis,
        source: BlockSource,
        path: Path,
        verify_workers: int = 0,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self._source = source
        self._on_progress = on_progress
        # spawn: the play's LevelDB handles and threads stay out of the replaying process
        context = multiprocessing.get_context("spawn")
        self._blocks: multiprocessing.Queue[bytes | None] = context.Queue(QUEUE_BLOCKS)
        self._reports: multiprocessing.Queue[tuple[object, ...]] = context.Queue()
        self._process: SpawnProcess = context.Process(
            target=_replaying,
            args=(genesis.canonical_json(), str(path), verify_workers, self._blocks, self._reports),
            name="bench-state-replay",
            daemon=True,
        )
        self._process.start()
        self._done: ReplayFigures | None = None
        try:
            ready = self._report(READY_TIMEOUT_S)
            if ready[0] != "ready":
                self._handle(ready)  # its error, said as every later one is
                raise ReplayBesideError(f"the replaying process sent {ready!r} first")
        except BaseException:
            self.close()
            raise
        self._next = int(str(ready[1])) + 1
        if self._next > source.head_height() + 1:
            self.close()
            raise ReplayBesideError(
                f"the replay's ledger at {path} is at block {self._next - 1}, past the play's "
                f"head {source.head_height()}: they are not one chain's"
            )

    @property
    def pid(self) -> int:
        """The replaying process's."""
        pid = self._process.pid
        assert pid is not None  # started in __init__
        return pid

    @property
    def next_height(self) -> int:
        """The first block not yet handed over."""
        return self._next

    def feed(self) -> None:
        """Hand over what the play has committed, as much as the queue takes now; never waits.

        Raises :class:`ReplayBesideError` if the replaying process failed."""
        self._take_reports()
        head = self._source.head_height()
        while self._next <= head:
            try:
                self._blocks.put_nowait(self._block(self._next))
            except queue.Full:
                return
            self._next += 1

    def finish(self, timeout_s: float | None = None) -> ReplayFigures:
        """Hand over the rest and wait until every block of the play is replayed; the figures
        of its ``done`` report."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        head = self._source.head_height()
        while self._next <= head + 1:
            item = self._block(self._next) if self._next <= head else None
            while True:
                try:
                    self._blocks.put(item, timeout=1.0)
                    break
                except queue.Full:
                    self._take_reports()
                    self._check_deadline(deadline)
            self._next += 1
        while self._done is None:
            self._take_reports(wait_s=1.0)
            self._check_deadline(deadline)
        self._process.join(timeout=30)
        return self._done

    def close(self) -> None:
        """Stop the replaying process if it still runs (its ledger holds what it committed)."""
        self._blocks.cancel_join_thread()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=30)

    def _block(self, height: int) -> bytes:
        raw = self._source.get_block_raw(height)
        if raw is None:
            raise ReplayBesideError(f"the play's ledger has no block {height}")
        return raw

    def _check_deadline(self, deadline: float | None) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise ReplayBesideError(f"the replay did not reach block {self._next - 1} in time")

    def _report(self, wait_s: float) -> tuple[object, ...]:
        """The next report, waiting at most ``wait_s``; a process gone without one is an error."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return self._reports.get(timeout=0.5)
            except queue.Empty:
                if not self._process.is_alive():
                    try:
                        return self._reports.get(timeout=1.0)
                    except queue.Empty:
                        raise ReplayBesideError(
                            "the replaying process stopped without saying why (exit code "
                            f"{self._process.exitcode})"
                        ) from None
                if time.monotonic() > deadline:
                    raise ReplayBesideError(
                        f"the replaying process said nothing for {wait_s:.0f} s"
                    ) from None

    def _take_reports(self, wait_s: float = 0.0) -> None:
        """Take every report there is (waiting up to ``wait_s`` for the first one)."""
        first = True
        while True:
            try:
                if first and wait_s:
                    report = self._reports.get(timeout=wait_s)
                else:
                    report = self._reports.get_nowait()
            except queue.Empty:
                if not self._process.is_alive() and self._done is None:
                    report = self._report(0.0)  # its last words, or the exit code
                else:
                    return
            first = False
            self._handle(report)

    def _handle(self, report: tuple[object, ...]) -> None:
        kind = report[0]
        if kind == "error":
            raise ReplayBesideError(f"the replay stopped at block {report[1]}: {report[2]}")
        figures = report[1] if len(report) == 2 else None
        if kind in ("progress", "done") and isinstance(figures, ReplayFigures):
            if self._on_progress is not None:
                self._on_progress(*figures)
            if kind == "done":
                self._done = figures
            return
        raise ReplayBesideError(f"the replaying process sent {report!r}")
