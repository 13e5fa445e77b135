"""Block cost over a community's year: does a validator keep up as the chain gets old?

A community of ``--households`` (default 200) is played for ``--days`` (default 365) of block
time, faster than real time, through the real :class:`~gridchain.market.app.Application` and
the real LevelDB :class:`~gridchain.node.store.Store` (state, tree nodes, blocks and index in
one synced batch per block, as a validator writes them).  Every 15-minute slot has three blocks:

1. slot start + 30 s: every meter's reading of the slot that just ended (one ``MeterReadings``
   per household bridge, the records signed by the bridge as meterbridge/ signs them);
2. + 5 min: every household places an order for the slot two hours ahead (PV households sell,
   the others buy, prices around one mid so the books cross), and once a day every EV
   household sends a ``CDRequest`` for the evening;
3. + 10 min: nothing but what every block does (expiry, settlement of the slots whose grace
   is over, the C&D decision of the interval), built by the proposer path.

What is printed: ms per block (execution + commit) averaged over the first, middle and last
day, and last/first; the live state entries and the ledger's size on disk at the end (its two
LevelDBs, ADR 0050: the live state and the history); and the time to replay the chain: every
stored block checked and executed again from genesis on a fresh ledger as a validator that
re-executes fetched blocks does (certificate, structure, every transaction's signature once,
execution, its root checked against each header; ``--verify-workers`` checks a block's
signatures in that many processes, ADR 0040).  Play and replay print their CPU seconds too,
the figure to compare on a shared machine (ADR 0055).  Benchmarks measure; tests never assert
timings.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gridchain.bench import state_progress as progress
from gridchain.bench.conditions import conditions
from gridchain.bench.state_progress import DayFigures
from gridchain.consensus.certificates import check_certificate, genesis_commit_rule
from gridchain.genesis.builder import GenesisBundle, build_genesis, household_meter_ids
from gridchain.genesis.schema import Genesis, parse_genesis
from gridchain.market.app import Application, BlockBuild, BlockContext, Execution
from gridchain.market.state import MerkleState
from gridchain.node.state_nodes import LedgerNodes, bind_genesis, ledger_state
from gridchain.node.store import Store
from gridchain.node.verify_pool import VerifyPool
from gridchain.protocol.block import (
    Block,
    BlockHeader,
    Certificate,
    CommittedBlock,
    Vote,
    check_block_structure,
    schedule_root,
    tx_root,
)
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.meter import GENESIS_READING_HASH, ReadingRecord, sign_reading
from gridchain.protocol.tx import (
    CDKind,
    CDRequest,
    Device,
    Market,
    MeterReadings,
    PlaceOrder,
    Side,
    Transaction,
    sign_tx,
)

SLOT_MS = 900_000
DAY_MS = 86_400_000
SLOTS_PER_DAY = DAY_MS // SLOT_MS
#: 2025-01-01T00:00Z: a whole number of slots and days.
GENESIS_TIME_MS = 1_735_689_600_000
MID_MC_PER_KWH = 150_000
#: Block offsets inside a slot (readings, orders, a quiet block).
READINGS_AT_MS, ORDERS_AT_MS, QUIET_AT_MS = 30_000, 300_000, 600_000
#: The slot's blocks in order: ``play`` builds them, ``block_times_ms`` and ``block_kind`` name
#: them.
SLOT_BLOCK_OFFSETS_MS = (READINGS_AT_MS, ORDERS_AT_MS, QUIET_AT_MS)
BLOCKS_PER_SLOT = len(SLOT_BLOCK_OFFSETS_MS)
BLOCKS_PER_DAY = BLOCKS_PER_SLOT * SLOTS_PER_DAY
ORDER_LEAD_SLOTS = 8


@dataclass
class MeterFeed:
    """One meter's signed record chain, as its bridge keeps it."""

    meter_id: str
    kind: str  # net, pv, ev, battery
    sequence: int = 0
    prev_hash: bytes = GENESIS_READING_HASH
    import_wh: int = 0
    export_wh: int = 0

    def next_record(self, start_ms: int, rng: random.Random) -> ReadingRecord:
        hour = (start_ms % DAY_MS) / 3_600_000
        sun = max(0.0, 1 - abs(hour - 12) / 6)
        if self.kind == "pv":
            self.export_wh += int(400 * sun * rng.uniform(0.6, 1.0))
        elif self.kind == "ev":
            self.import_wh += rng.choice((0, 0, 0, 2750)) if hour < 7 or hour > 18 else 0
        elif self.kind == "battery":
            self.import_wh += int(100 * sun)
            self.export_wh += 0 if sun else rng.randint(0, 80)
        else:
            self.import_wh += rng.randint(50, 300)
            self.export_wh += int(150 * sun * rng.random())
        record = ReadingRecord(
            meter_id=self.meter_id,
            interval_start_ms=start_ms,
            interval_end_ms=start_ms + SLOT_MS,
            import_wh=self.import_wh,
            export_wh=self.export_wh,
            power_w=0,
            voltage_dv=2301,
            status=0,
            sequence=self.sequence,
            prev_hash=self.prev_hash,
        )
        self.sequence += 1
        self.prev_hash = record.hash()
        return record


@dataclass
class Household:
    key: SigningKey
    bridge: SigningKey
    devices: tuple[str, ...]
    meters: list[MeterFeed]
    nonce: int = 0
    bridge_nonce: int = 0

    def sign(self, chain_id: bytes, body: Any) -> Transaction:
        tx = sign_tx(self.key, chain_id, self.nonce, body)
        self.nonce += 1
        return tx


@dataclass
class Community:
    bundle: GenesisBundle
    households: list[Household]
    rng: random.Random = field(default_factory=lambda: random.Random(17))
    chain_id: bytes = b""

    def __post_init__(self) -> None:
        self.chain_id = self.bundle.genesis.chain_id  # a property that hashes the document

    def readings(self, slot: int) -> list[Transaction]:
        start = (slot - 1) * SLOT_MS
        out = []
        for h in self.households:
            signed = tuple(
                sign_reading(h.bridge, self.chain_id, m.next_record(start, self.rng))
                for m in h.meters
            )
            out.append(sign_tx(h.bridge, self.chain_id, h.bridge_nonce, MeterReadings(signed)))
            h.bridge_nonce += 1
        return out

    def orders(self, slot: int) -> list[Transaction]:
        out = []
        for h in self.households:
            sells = "PV" in h.devices
            side, device = (Side.SELL, Device.PV) if sells else (Side.BUY, Device.LOAD)
            price = MID_MC_PER_KWH + 1000 * (self.rng.randint(-5, 5) + (-3 if sells else 3))
            body = PlaceOrder(
                int(Market.INTRADAY),
                slot + ORDER_LEAD_SLOTS,
                int(side),
                int(device),
                price,
                self.rng.randint(100, 800),
                0,
                0,
            )
            out.append(h.sign(self.chain_id, body))
        return out

    def cd_requests(self, day_start_ms: int) -> list[Transaction]:
        """Every EV household asks to be charged overnight (18:00 to 06:00 the next day), with
        no limit price (a charge may then be planned in any interval), measured by its EV meter."""
        out = []
        for h in self.households:
            if "EV" not in h.devices:
                continue
            ev_meter = next(m.meter_id for m in h.meters if m.kind == "ev")
            body = CDRequest(
                int(CDKind.CHARGE),
                int(Device.EV),
                day_start_ms + 18 * 3_600_000,
                day_start_ms + 30 * 3_600_000,
                self.rng.randint(5_000, 20_000),
                7_400,
                NO_LIMIT_MC_PER_KWH,
                ev_meter,
            )
            out.append(h.sign(self.chain_id, body))
        return out


def recent_genesis_ms(days: int, now_ms: int) -> int:
    """A genesis time (a whole slot) such that the last block of ``days`` played from it is 5
    to 20 minutes before ``now_ms``: a validator then starts on a ledger whose last block is
    recent, as a live chain's is.  With a genesis years back, every block after the restart
    settled and pruned a backlog of empty slots (a few per block), and bench footprint's
    "idle" window measured that."""
    return (now_ms - days * DAY_MS - SLOT_MS) // SLOT_MS * SLOT_MS


#: A charge request's limit price that admits every interval's C&D price (ADR 0030).
NO_LIMIT_MC_PER_KWH = 2**64 - 1


def community(
    households: int,
    *,
    gateways: int = 0,
    engine: str = "solo",
    genesis_time_ms: int = GENESIS_TIME_MS,
) -> Community:
    """The community's genesis and households; ``gateways`` genesis gateways too, ``engine``
    for its one validator (bench footprint runs a gateway, which links to a validator's peer
    network: a solo validator has none, a PBFT one of one validator has).  The blocks are
    certified by that validator's commit vote, which both engines' commit rules accept.
    ``genesis_time_ms`` (a whole number of slots) lets bench footprint end the played days
    just before the present, as a live chain's last block is."""
    if genesis_time_ms % SLOT_MS:
        raise ValueError("the genesis time must be a whole number of slots")
    counter = iter(range(10**7))
    bundle = build_genesis(
        chain_name="gridchain-bench-state",
        genesis_time_ms=genesis_time_ms,
        validators=1,
        participants=households,
        engine=engine,
        new_key=lambda: SigningKey(sha256(f"bench-state-{next(counter)}".encode())),
        balance_mc=10**13,
        extra_params={"slot_length_ms": SLOT_MS, "max_block_txs": 5000},
        with_meters=True,
        gateways=gateways,
    )
    # The governance account is the real-time pool's counterparty: fund it.
    doc = bundle.genesis.model_dump(mode="json")
    doc["balances"].append({"address": bundle.genesis.governance_address, "amount_mc": 10**15})
    bundle = GenesisBundle(
        parse_genesis(doc),
        bundle.validators,
        bundle.participants,
        bundle.governance,
        bundle.bridges,
        gateways=bundle.gateways,
    )
    members = []
    for peer, bridge, entry in zip(
        bundle.participants, bundle.bridges, bundle.genesis.participants, strict=True
    ):
        devices = tuple(entry.devices)
        meters = [
            MeterFeed(meter_id, meter_id.rsplit("-", 1)[1])
            for _, meter_id in household_meter_ids(peer.name, devices)
        ]
        members.append(Household(peer.key, bridge.key, devices, meters))
    return Community(bundle, members)


def _certified(
    chain_id: bytes, validator: SigningKey, ctx: BlockContext, prev: bytes, built: BlockBuild
) -> CommittedBlock:
    """The proposer's block around ``built``, certified by the one validator."""
    txs, schedule = built.txs, built.schedule
    header = BlockHeader(
        chain_id, ctx.height, prev, ctx.timestamp_ms, validator.public_key, 0, built.benefit,
        tx_root(txs), schedule_root(schedule), built.execution.state_root,
    )  # fmt: skip
    block = Block(header, txs, schedule)
    vote = Vote(ctx.height, 0, block.hash(), 2)
    return CommittedBlock(block, Certificate(vote, (vote.sign(validator, chain_id),)))


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@dataclass
class Ledger:
    """A validator's application, state and LevelDB ledger, committing blocks as it does."""

    app: Application
    store: Store
    state: MerkleState
    nodes: LedgerNodes
    height: int = 0
    prev: bytes = b""
    #: the processes checking a replay's signatures (:func:`open_replay`), if any
    pool: VerifyPool | None = None

    @classmethod
    def open(cls, genesis: Genesis, path: Path) -> Ledger:
        """A new ledger at ``path``, or the one there at its committed head (a play or replay
        going on in a new process), its state checked against the head's state root."""
        app = Application(genesis)
        store = Store(path)
        try:
            bind_genesis(store, genesis.chain_id, genesis.canonical_json(), app.genesis_state())
            state, nodes = ledger_state(store)
            height, prev = store.head_height(), genesis.chain_id
            if height:
                head = store.get_block(height)
                if head is None or state.root() != head.block.header.state_root:
                    raise RuntimeError(f"the ledger at {path} does not match its head {height}")
                prev = head.block.hash()
        except BaseException:
            store.close()
            raise
        return cls(app, store, state, nodes, height, prev)

    def commit(self, committed: CommittedBlock, execution: Execution) -> None:
        tree_writes = self.state.apply(execution.writes)
        self.store.commit_block(
            committed, execution.writes, tree_writes, archived=execution.archived
        )
        self.nodes.written(tree_writes)
        self.height = committed.block.height
        self.prev = committed.block.hash()


class PlayedBlock(NamedTuple):
    """One committed block of ``play``, with what its build and commit cost."""

    #: the played day, from 0
    day: int
    height: int
    wall_ms: float
    #: this process's CPU time: every thread's, LevelDB's background compactions included
    cpu_ms: float
    #: this thread's CPU time only: the block's own work, not a compaction running meanwhile
    thread_cpu_ms: float


#: A block's kind by its place in the slot (``(height - 1) % BLOCKS_PER_SLOT``).
BLOCK_KINDS = ("readings", "orders", "quiet")


def block_kind(height: int) -> str:
    """Which of the slot's three blocks ``height`` is (every day has as many blocks)."""
    return BLOCK_KINDS[(height - 1) % BLOCKS_PER_SLOT]


def play(
    bundle: GenesisBundle,
    people: Community,
    ledger: Ledger,
    days: int,
    *,
    first_day: int = 0,
    on_day_end: Callable[[int], None] | None = None,
) -> Generator[PlayedBlock, None, None]:
    """Build and commit every block of days ``first_day`` to ``days`` - 1; yield each one's
    day, height and costs (wall, process CPU and this thread's CPU ms of its build and
    commit; the generator's work before it is not counted).

    The CPU time is this process's: on a machine shared with other work it is the figure to
    compare between days (the wall time also counts the waits for a core).

    ``people`` must be where the generator was at ``first_day``'s start (bench/state_progress.py
    keeps it between processes).  Blocks the ledger already holds (a run stopped in mid-day)
    are generated again, checked against the stored blocks' transaction roots and not
    committed twice.  ``on_day_end(day)`` runs after each day's last block, before the next
    day is generated: the generator is then exactly at that day's end."""
    chain_id = people.chain_id
    validator = bundle.validators[0].key
    genesis_ms = bundle.genesis.genesis_time_ms
    first_slot = genesis_ms // SLOT_MS + 1
    slots = range(first_slot + first_day * SLOTS_PER_DAY, first_slot + days * SLOTS_PER_DAY)
    stored_head = ledger.height
    height = first_day * BLOCKS_PER_DAY  # every day has as many blocks
    for slot in slots:
        start = slot * SLOT_MS
        day = (slot - first_slot) // SLOTS_PER_DAY  # the played day, from 0
        batches = [
            (READINGS_AT_MS, people.readings(slot)),
            (ORDERS_AT_MS, people.orders(slot)),
            (QUIET_AT_MS, []),
        ]
        if start % DAY_MS == 6 * 3_600_000:
            batches[1][1].extend(people.cd_requests(start - start % DAY_MS))
        for offset, txs in batches:
            height += 1
            if height <= stored_head:
                _check_stored(ledger.store, height, txs)
                continue
            began, began_cpu = time.perf_counter(), time.process_time()
            began_thread = time.thread_time()
            ts = start + offset
            ctx = BlockContext(ledger.height + 1, ts, validator.public_key)
            built = ledger.app.build_block(ledger.state, txs, ctx)
            if built.left_out:
                _, exc = built.left_out[0]
                raise RuntimeError(f"a benchmark transaction was left out: {exc.message}")
            committed = _certified(chain_id, validator, ctx, ledger.prev, built)
            ledger.commit(committed, built.execution)
            yield PlayedBlock(
                day,
                height,
                (time.perf_counter() - began) * 1000,
                (time.process_time() - began_cpu) * 1000,
                (time.thread_time() - began_thread) * 1000,
            )
        if on_day_end is not None and (slot - first_slot + 1) % SLOTS_PER_DAY == 0:
            on_day_end(day)


def block_times_ms(genesis_time_ms: int, day: int) -> list[int]:
    """The timestamps of played day ``day``'s blocks, in order (``play``'s schedule)."""
    first_slot = genesis_time_ms // SLOT_MS + 1 + day * SLOTS_PER_DAY
    return [
        slot * SLOT_MS + offset
        for slot in range(first_slot, first_slot + SLOTS_PER_DAY)
        for offset in SLOT_BLOCK_OFFSETS_MS
    ]


def _check_stored(store: Store, height: int, txs: list[Transaction]) -> None:
    committed = store.get_block(height)
    if committed is None or committed.block.header.tx_root != tx_root(tuple(txs)):
        raise RuntimeError(
            f"the ledger's block {height} is not the one the generator makes again: the "
            "progress file and the ledger do not belong together"
        )


@dataclass(frozen=True)
class Replayed:
    blocks: int
    seconds: float
    #: this process's CPU time (the verify pool's workers, if any, not counted)
    cpu_seconds: float


def open_replay(genesis: Genesis, path: Path, verify_workers: int = 0) -> Ledger:
    """The replay's ledger at ``path`` (new, or at the head a stopped replay reached), its
    signature checks handed to ``verify_workers`` processes if any (ADR 0040; close with
    :func:`close_replay`)."""
    ledger = Ledger.open(genesis, path)
    if verify_workers:
        try:
            pool = VerifyPool(verify_workers)
        except BaseException:
            ledger.store.close()
            raise
        ledger.app.signatures.use_batch(pool, 1)
        ledger.app.readings.use_batch(pool, 1)  # and its meter readings' (ADR 0056)
        ledger.pool = pool
    return ledger


def close_replay(ledger: Ledger) -> None:
    try:
        ledger.store.close()
    finally:
        if ledger.pool is not None:
            ledger.pool.close()


def replay_block(genesis: Genesis, ledger: Ledger, committed: CommittedBlock) -> None:
    """Check and execute ``committed`` on ``ledger`` and commit it, as a validator that
    re-executes a fetched block does (node/driver.py ``_commit``): the certificate under the
    engine's commit rule, the block's structure and every transaction's signature (once: the
    application's signature cache), then the execution, its root against the header's."""
    block = committed.block
    header = block.header
    height = block.height
    if height != ledger.height + 1:
        raise RuntimeError(f"the replay is at block {ledger.height} and was given {height}")
    rule = genesis_commit_rule(genesis, block)
    # the application's chain id, computed once (Genesis.chain_id hashes the whole document:
    # about 3 ms for 200 households' meters, twice a block)
    chain_id = ledger.app.chain_id
    check_certificate(committed.certificate, block, rule, chain_id)
    check_block_structure(block, chain_id, signatures=ledger.app.signatures)
    execution = ledger.app.execute_block(
        ledger.state,
        block.txs,
        BlockContext(height, header.timestamp_ms, header.proposer),
        schedule=block.schedule,
        benefit=header.benefit,
    )
    if execution.state_root != header.state_root:
        raise RuntimeError(f"replay diverged at block {height}")
    ledger.commit(committed, execution)


def replay(
    genesis: Genesis,
    source: Store,
    path: Path,
    verify_workers: int = 0,
    *,
    on_progress: Callable[[int, int, float, float], None] | None = None,
    progress_every: int = BLOCKS_PER_DAY,
) -> Replayed:
    """Check and execute every block of ``source`` again on a fresh ledger (:func:`replay_block`;
    a block's signatures in ``verify_workers`` processes if any, ADR 0040).

    A ledger already at ``path`` (a replay stopped by its process) goes on from its head.
    ``on_progress(height, blocks, seconds, cpu seconds)`` runs every ``progress_every`` blocks
    and at the end, with the blocks replayed and the time spent since this call began; the
    returned figures count only the blocks this call replayed."""
    ledger = open_replay(genesis, path, verify_workers)
    first = ledger.height + 1
    began, began_cpu = time.perf_counter(), time.process_time()
    try:
        for height in range(first, source.head_height() + 1):
            committed = source.get_block(height)
            assert committed is not None
            replay_block(genesis, ledger, committed)
            if on_progress is not None and height % progress_every == 0:
                seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
                on_progress(height, height - first + 1, seconds, cpu)
        seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
        if on_progress is not None:
            on_progress(ledger.height, ledger.height - first + 1, seconds, cpu)
    finally:
        close_replay(ledger)
    return Replayed(source.head_height() - first + 1, seconds, cpu)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _days(log: dict[int, DayFigures], days: int, figure: str) -> dict[str, float]:
    first, middle, last = (getattr(log[d], figure) for d in (0, days // 2, days - 1))
    return {
        "first_day": round(first, 2),
        "middle_day": round(middle, 2),
        "last_day": round(last, 2),
        "last_over_first": round(last / first, 3),
    }


class PlaySession:
    """One process's part of the play in ``directory``: the ledger open at its head, the
    generator where the progress file left it, each played day's figures and the generator's
    state saved after the day (bench/state_progress.py).  ``run`` drives it alone; the
    aged-versus-fresh comparison (bench/state_compare.py) drives it block by block beside a
    fresh ledger, so the aged ledger's day is saved exactly as a resumed run's."""

    def __init__(
        self,
        households: int,
        days: int,
        directory: Path,
        *,
        resume: bool = False,
        genesis_time_ms: int = GENESIS_TIME_MS,
        gateways: int = 0,
    ) -> None:
        saved = progress.load(directory)
        self.ledger_path = directory / "ledger"
        if resume:
            if saved is None:
                raise progress.ProgressError(f"{directory} holds no play to go on with")
            if (saved.households, saved.genesis_time_ms, saved.gateways) != (
                households,
                genesis_time_ms,
                gateways,
            ):
                raise progress.ProgressError(
                    f"the play in {directory} has {saved.households} households and "
                    f"{saved.gateways} gateways from genesis time {saved.genesis_time_ms}, not "
                    f"{households} and {gateways} from {genesis_time_ms}"
                )
            if days < saved.played_days:
                raise progress.ProgressError(
                    f"the play in {directory} has played {saved.played_days} days already"
                )
        elif saved is not None or self.ledger_path.exists():
            raise progress.ProgressError(
                f"{directory} holds a play already: go on with it (--resume) or use an empty "
                "directory"
            )
        self.directory, self.households, self.days = directory, households, days
        self.genesis_time_ms, self.gateways = genesis_time_ms, gateways
        self.people = community(households, gateways=gateways, genesis_time_ms=genesis_time_ms)
        self.bundle = self.people.bundle
        self.this_run = 1 if saved is None else saved.runs + 1
        #: whole days played before this process (the progress file's)
        self.first_day = 0 if saved is None else saved.played_days
        if saved is not None:
            progress.restore(self.people, saved.generator)
        self.log = {} if saved is None else {f.day: f for f in saved.day_log}
        #: the play's wall and CPU seconds over every run, up to the last saved day
        self.play_seconds = 0.0 if saved is None else saved.play_seconds
        self.play_cpu_seconds = 0.0 if saved is None else saved.play_cpu_seconds
        self.replayed = None if saved is None else saved.replay
        #: set by the aged-versus-fresh comparison: the days it plays are marked in the log
        self.compared = False
        self._walls: list[float] = []
        self._cpus: list[float] = []
        self._mark = (time.perf_counter(), time.process_time())
        self.ledger = Ledger.open(self.bundle.genesis, self.ledger_path)
        if saved is None:
            try:
                self.record(0)
            except BaseException:
                self.ledger.store.close()
                raise

    def record(self, played_days: int) -> None:
        progress.save(
            self.directory,
            progress.Progress(
                format=progress.PROGRESS_FORMAT,
                households=self.households,
                genesis_time_ms=self.genesis_time_ms,
                gateways=self.gateways,
                played_days=played_days,
                generator=progress.capture(self.people),
                day_log=tuple(self.log[d] for d in sorted(self.log)),
                play_seconds=self.play_seconds,
                play_cpu_seconds=self.play_cpu_seconds,
                runs=self.runs,
                replay=self.replayed,
            ),
        )

    @property
    def runs(self) -> int:
        """Processes that played part of this play: this one only once it has played a block
        (a process that only reports, or only replays, is not one of the play's runs)."""
        played = self._walls or any(f.run == self.this_run for f in self.log.values())
        return self.this_run if played else self.this_run - 1

    def _day_end(self, day: int) -> None:
        if self._walls:
            self.log[day] = DayFigures(
                day=day,
                blocks=len(self._walls),
                wall_ms=_mean(self._walls),
                cpu_ms=_mean(self._cpus),
                load_1m=round(os.getloadavg()[0], 2),
                run=self.this_run,
                compared=self.compared,
            )
        self._walls.clear()
        self._cpus.clear()
        now = (time.perf_counter(), time.process_time())
        self.play_seconds += now[0] - self._mark[0]
        self.play_cpu_seconds += now[1] - self._mark[1]
        self._mark = now
        self.record(day + 1)
        figures = self.log.get(day)
        if figures is not None:  # a long play says how far it is (stderr: --json stays clean)
            # with the replay beside the play: how far it is too
            beside = "" if self.replayed is None else f"; replayed to block {self.replayed.height}"
            print(
                f"day {day + 1} of {self.days}: {figures.wall_ms:.1f} ms, "
                f"{figures.cpu_ms:.1f} CPU ms per block, load {figures.load_1m}{beside}",
                file=sys.stderr,
                flush=True,
            )

    def played(self) -> Iterator[PlayedBlock]:
        """Play up to ``days``, saving the progress after every day; yield each block."""
        for block in play(
            self.bundle,
            self.people,
            self.ledger,
            self.days,
            first_day=self.first_day,
            on_day_end=self._day_end,
        ):
            self._walls.append(block.wall_ms)
            self._cpus.append(block.cpu_ms)
            yield block

    def close(self) -> None:
        self.ledger.store.close()


def run(
    households: int,
    days: int,
    directory: Path,
    do_replay: bool,
    verify_workers: int = 0,
    *,
    resume: bool = False,
    genesis_time_ms: int = GENESIS_TIME_MS,
    gateways: int = 0,
    replay_beside: bool = False,
) -> dict[str, Any]:
    """Play (and replay) ``days`` into ``directory``; with ``resume``, go on with the play its
    progress file describes (bench/state_progress.py), which must be of ``households``,
    ``genesis_time_ms`` and ``gateways``.  With ``replay_beside`` the replay runs in a second
    process as the play commits (bench/state_beside.py), else after the play, in this one."""
    session = PlaySession(
        households,
        days,
        directory,
        resume=resume,
        genesis_time_ms=genesis_time_ms,
        gateways=gateways,
    )
    before = session.replayed or progress.ReplayProgress(
        height=0, timed_blocks=0, seconds=0.0, cpu_seconds=0.0, runs=0
    )

    def replay_progress(height: int, count: int, seconds: float, cpu: float) -> None:
        session.replayed = progress.ReplayProgress(
            height=height,
            timed_blocks=before.timed_blocks + count,
            seconds=before.seconds + seconds,
            cpu_seconds=before.cpu_seconds + cpu,
            # a process that replayed nothing (the replay was at the head) is not a run of it
            runs=before.runs + int(count > 0),
            beside_runs=before.beside_runs + int(count > 0 and replay_beside),
        )

    try:
        if do_replay and replay_beside:
            _play_with_replay_beside(session, directory, verify_workers, replay_progress)
        else:
            for _ in session.played():
                pass
        entries = len(session.ledger.state)
        blocks = session.ledger.height
        history_path = session.ledger.store.history_path
    finally:
        session.close()
    log, ledger_path = session.log, session.ledger_path
    db_bytes = _du(ledger_path)
    history_bytes = _du(history_path)
    report: dict[str, Any] = {
        "households": households,
        "days": days,
        "blocks": blocks,
        "ms_per_block": _days(log, days, "wall_ms"),
        "cpu_ms_per_block": _days(log, days, "cpu_ms"),
        "live_state_entries": entries,
        "ledger_bytes": db_bytes,
        "live_bytes": db_bytes - history_bytes,
        "history_bytes": history_bytes,
        "seconds": round(session.play_seconds, 1),
        "cpu_seconds": round(session.play_cpu_seconds, 1),
        "times_real_time": round(days * DAY_MS / 1000 / session.play_seconds, 1),
        "runs": session.runs,
        "partial_days": sorted(d for d, f in log.items() if f.blocks < BLOCKS_PER_DAY),
        "compared_days": sorted(d for d, f in log.items() if f.compared),
        "conditions": conditions(),
    }
    if do_replay:
        if not replay_beside:

            def saved_progress(height: int, count: int, seconds: float, cpu: float) -> None:
                replay_progress(height, count, seconds, cpu)
                session.record(days)

            source = Store(ledger_path)
            try:
                replay(
                    session.bundle.genesis,
                    source,
                    directory / "replay",
                    verify_workers,
                    on_progress=saved_progress,
                )
            finally:
                source.close()
        replayed = session.replayed
        assert replayed is not None
        report["replay"] = {
            "blocks": replayed.height,
            "timed_blocks": replayed.timed_blocks,
            "seconds": round(replayed.seconds, 1),
            "cpu_seconds": round(replayed.cpu_seconds, 1),
            "runs": replayed.runs,
            "beside_runs": replayed.beside_runs,
            "verify_workers": verify_workers,
        }
    return report


def _play_with_replay_beside(
    session: PlaySession,
    directory: Path,
    verify_workers: int,
    on_progress: Callable[[int, int, float, float], None],
) -> None:
    """Play to the session's days with the replay in a second process (bench/state_beside.py),
    handing it every committed block; return when it has replayed them all, its figures in
    the progress file."""
    from gridchain.bench.state_beside import ReplayBeside  # noqa: PLC0415 (it imports this)

    beside = ReplayBeside(
        session.bundle.genesis,
        session.ledger.store,
        directory / "replay",
        verify_workers,
        on_progress=on_progress,
    )
    try:
        beside.feed()
        for _ in session.played():
            beside.feed()
        beside.finish()
    finally:
        beside.close()
    session.record(session.days)


def format_report(r: dict[str, Any]) -> list[str]:
    lines = [
        f"{r['households']} households, {r['days']} days, {r['blocks']} blocks "
        f"in {r['seconds']} s, {r['cpu_seconds']} s CPU ({r['times_real_time']}x real time)",
    ]
    for name, key in (("ms per block (wall)", "ms_per_block"), ("CPU ms", "cpu_ms_per_block")):
        ms = r[key]
        lines.append(
            f"{name}: first day {ms['first_day']}, middle day {ms['middle_day']}, "
            f"last day {ms['last_day']} (last/first {ms['last_over_first']})"
        )
    lines += [
        f"live state entries {r['live_state_entries']}, ledger {r['ledger_bytes'] / 1e6:.1f} MB "
        f"(live state {r['live_bytes'] / 1e6:.1f} MB, history {r['history_bytes'] / 1e6:.1f} MB)",
    ]
    if "replay" in r:
        rep = r["replay"]
        workers = f", {rep['verify_workers']} verify workers" if rep["verify_workers"] else ""
        timed = "" if rep["timed_blocks"] == rep["blocks"] else f" ({rep['timed_blocks']} timed)"
        beside = rep["beside_runs"]
        how = (
            ""
            if not beside
            else " beside the play (each block's own time in the replaying process)"
            if beside == rep["runs"]
            else f" ({beside} of them beside the play, each block's own time)"
        )
        lines.append(
            f"replay: {rep['blocks']} blocks{timed} in {rep['seconds']} s, "
            f"{rep['cpu_seconds']} s CPU{workers}, {rep['runs']} run(s){how}"
        )
    if r["runs"] > 1:
        partial = r["partial_days"]
        lines.append(
            f"played in {r['runs']} runs (the progress file carried it between processes)"
            + (f"; days measured in part (a run stopped in them): {partial}" if partial else "")
        )
    if r["compared_days"]:
        lines.append(
            f"days played beside a fresh ledger (--compare-fresh; their wall and CPU figures "
            f"include its compactions): {r['compared_days']}"
        )
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridchain bench state", description=__doc__)
    parser.add_argument("--households", type=int, help="default 200; with --resume, the play's")
    parser.add_argument("--days", type=int, default=365, help="days to have played in all")
    parser.add_argument("--no-replay", action="store_true", help="skip the replay")
    parser.add_argument(
        "--replay-beside",
        action="store_true",
        help="replay in a second process as the play commits each block, instead of after the "
        "play (two cores: the replay then ends about when the play does; its seconds are each "
        "block's own time)",
    )
    parser.add_argument("--data-dir", type=Path, help="keep the ledgers here (default: temp)")
    parser.add_argument(
        "--verify-workers",
        type=int,
        default=0,
        help="check each replayed block's signatures in this many processes (default: none)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with the play (and replay) in --data-dir where its last process stopped",
    )
    parser.add_argument(
        "--end-now",
        action="store_true",
        help="a genesis time such that the played days end just before now (default: 2025-01-01)",
    )
    parser.add_argument(
        "--gateway",
        action="store_true",
        help="name one gateway in the community's genesis, so that bench footprint --played "
        "can run a gateway on this chain (its solo validator then has peer links; the blocks "
        "are the same, the chain id is not); with --resume, the play's own genesis",
    )
    parser.add_argument(
        "--compare-fresh",
        action="store_true",
        help="with --resume: play --compare-days more days of the play in --data-dir and, "
        "block by block in turn in this process, the community's first days on a fresh "
        "ledger; print aged/fresh per block kind (--days and the replay are not used)",
    )
    parser.add_argument(
        "--compare-days", type=int, default=1, help="days each side plays (default 1)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.compare_fresh:
        return _compare_main(parser, args)
    if args.days < 1 or (args.households is not None and args.households < 1):
        parser.error("--days and --households must be at least 1")
    if args.verify_workers < 0:
        parser.error("--verify-workers must be 0 or more")
    if args.replay_beside and args.no_replay:
        parser.error("--replay-beside and --no-replay exclude each other")
    households = 200 if args.households is None else args.households
    genesis_ms = (
        recent_genesis_ms(args.days, time.time_ns() // 1_000_000)
        if args.end_now
        else GENESIS_TIME_MS
    )
    saved: progress.Progress | None = None
    if args.resume:
        saved = _saved_play(parser, args)
        if args.gateway:
            parser.error("--resume goes on with the play's own genesis: drop --gateway")
        households, genesis_ms = saved.households, saved.genesis_time_ms
    gateways = 1 if args.gateway else 0 if saved is None else saved.gateways
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.data_dir or Path(tmp)
        try:
            report = run(
                households,
                args.days,
                directory,
                not args.no_replay,
                args.verify_workers,
                resume=args.resume,
                genesis_time_ms=genesis_ms,
                gateways=gateways,
                replay_beside=args.replay_beside,
            )
        except progress.ProgressError as exc:
            parser.error(str(exc))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(format_report(report)))
    return 0


def _saved_play(parser: argparse.ArgumentParser, args: argparse.Namespace) -> progress.Progress:
    """The play ``--resume`` goes on with, or the command line's error (exits)."""
    if args.data_dir is None:
        parser.error("--resume needs --data-dir")
    if args.end_now:
        parser.error("--resume goes on from the play's own genesis time: drop --end-now")
    try:
        saved = progress.load(args.data_dir)
    except progress.ProgressError as exc:
        parser.error(str(exc))
    if saved is None:
        parser.error(f"{args.data_dir} holds no play to go on with")
    if args.households is not None and args.households != saved.households:
        parser.error(f"the play in {args.data_dir} has {saved.households} households")
    return saved


def _compare_main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from gridchain.bench.state_compare import compare_fresh, format_compare  # noqa: PLC0415

    if not args.resume or args.data_dir is None:
        parser.error("--compare-fresh goes on with a play: it needs --resume and --data-dir")
    if args.compare_days < 1:
        parser.error("--compare-days must be at least 1")
    _saved_play(parser, args)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-state-fresh-") as tmp:
            report = compare_fresh(args.data_dir, args.compare_days, Path(tmp))
    except progress.ProgressError as exc:
        parser.error(str(exc))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(format_compare(report)))
    return 0
