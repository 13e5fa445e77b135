"""The validator runtime: the shell that performs the chain driver's effects with real I/O.

Every decision about the chain (block validity, proposals, commits, pending branches, catch-up,
halting) is made by :class:`node.driver.ChainDriver`, which the cluster simulators in tests/sim
drive too.  This module owns what the driver must not touch: the LevelDB store (engine records
persisted synced; a committed block, its certificate, indexes and state writes in one synced
batch), the peer network, asyncio timers, the clock, metrics, logs and the subscribers of
commit events.  It hands every input to the driver with the current time and performs the
effects it returns, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from gridchain.consensus.certificates import check_certificate
from gridchain.consensus.engine import (
    Broadcast,
    ChainHead,
    Engine,
    Persist,
    ReportEvidence,
    Send,
    SetTimer,
)
from gridchain.consensus.kernel.verify import RememberedVerify, Verifier
from gridchain.consensus.solo import SoloEngine
from gridchain.genesis.schema import Genesis, parse_genesis
from gridchain.market.app import Application
from gridchain.market.gateways import gateways_in_force
from gridchain.market.pending import PendingChain
from gridchain.market.state import MerkleState
from gridchain.market.validators import removed_from, validator_schedule
from gridchain.node.config import ConfigError, NodeConfig, check_faults_allowed
from gridchain.node.driver import (
    ArmBoundary,
    ChainDriver,
    CommitBatch,
    CommitEvent,
    Effect,
    FetchBlocks,
    Halt,
    Note,
    StateDivergenceError,
    UnknownParentError,
    head_of,
)
from gridchain.node.heap_trim import QuietTrim, trim_at_rest
from gridchain.node.mempool import Mempool
from gridchain.node.metrics import NodeMetrics
from gridchain.node.reannounce import Reannouncer
from gridchain.node.sealing import validator_opener
from gridchain.node.state_nodes import bind_genesis, ledger_state
from gridchain.node.state_sync import (
    SnapshotPeers,
    SnapshotServer,
    StateSyncingError,
    VerifiedSnapshot,
    sync_from_peers,
)
from gridchain.node.store import Store
from gridchain.node.verify_pool import VerifyPool
from gridchain.protocol.block import CommittedBlock, decode_committed
from gridchain.protocol.crypto import SigningKey, verify
from gridchain.protocol.errors import DecodeError, GridchainError
from gridchain.protocol.tx import Transaction, decode_tx

__all__ = [
    "CommitEvent",
    "Node",
    "PeerLink",
    "StateDivergenceError",
    "Subscription",
    "UnknownParentError",
    "make_engine",
    "now_ms",
    "skewed_clock",
]


#: A pending transaction is flooded again at most this often (node/reannounce.py) ...
REANNOUNCE_MAX_BACKOFF_MS = 60_000
#: ... and at most this many per round, so a large backlog is spread over several rounds.
REANNOUNCE_MAX_PER_ROUND = 512


class PeerLink(Protocol):
    """What the runtime needs from the peer network (node.p2p.PeerNetwork)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def broadcast_consensus(self, payload: bytes) -> None: ...

    def send_consensus(self, to: bytes, payload: bytes) -> None: ...

    def gossip_tx(self, tx_bytes: bytes) -> None: ...

    def flush_gossip(self) -> None: ...

    def reannounce_tx(self, tx_bytes: bytes) -> None: ...

    async def fetch_blocks(self, from_height: int, count: int) -> list[bytes]: ...

    def peer_info(self) -> list[dict[str, Any]]: ...

    def announce_block(self, committed: bytes) -> None: ...

    def set_validators(self, keys: Collection[bytes]) -> None: ...

    def set_gateways(self, keys: Collection[bytes]) -> None: ...
    def stop_dialing(self) -> None: ...

    @property
    def has_gateway_links(self) -> bool: ...


class Subscription:
    """One reader's feed of commit events (the API's websocket), bounded by ``max_events``.

    A reader that falls that far behind is removed and ``overflowed`` is set, so that its
    owner can say so (the websocket closes with 1008) instead of the feed going silent.
    """

    def __init__(self, max_events: int) -> None:
        self.queue: asyncio.Queue[CommitEvent] = asyncio.Queue(maxsize=max_events)
        self.overflowed = asyncio.Event()


@dataclass
class _PendingWrites:
    """What :meth:`Node._perform` has gathered for its next synced batch (ADR 0051)."""

    records: dict[bytes, bytes] = field(default_factory=dict)
    commit: CommitBatch | None = None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def skewed_clock(offset_ms: int) -> Callable[[], int]:
    """The wall clock moved by ``offset_ms`` (config ``faults.clock_offset_ms``): the node's one
    time source, so a skewed validator's timestamps, timers and rounds all move together."""
    if offset_ms == 0:
        return now_ms
    return lambda: now_ms() + offset_ms


def make_engine(
    genesis: Genesis,
    key: SigningKey,
    verifier: Verifier = verify,
    validators_on: Callable[[bytes, int], tuple[bytes, ...]] | None = None,
) -> Engine:
    """The genesis engine for ``key``; PBFT checks its votes with ``verifier`` when given (the
    runtime shares it with its chain driver, ADR 0047); ``validators_on`` is the driver's set
    of a height on a branch, which PoB reads for its pending heights (ADR 0044)."""
    engine = genesis.consensus.engine
    if engine == "solo":
        if key.public_key not in genesis.validator_keys():
            raise ConfigError("node.private_key is not the key of the genesis validator")
        return SoloEngine(key, genesis.chain_id, genesis.params.block_interval_ms)
    # PBFT, PoB and ePoB: a key outside the genesis set follows the chain without signing until
    # a governance UpdateValidators admits it (ADR 0035, 0044); it votes from that height.
    if key.public_key in genesis.gateway_keys():
        raise ConfigError("node.private_key is a gateway's key, not a validator's")
    if engine == "pbft":
        from gridchain.consensus.pbft import PbftEngine  # noqa: PLC0415 - only validators running PBFT

        return PbftEngine(
            key,
            genesis.chain_id,
            genesis.validator_keys(),
            block_interval_ms=genesis.params.block_interval_ms,
            view_timeout_ms=genesis.consensus.view_timeout_ms,
            max_block_txs=genesis.params.max_block_txs,
            verifier=verifier,
        )
    params = genesis.consensus
    if engine == "pob":
        from gridchain.consensus.pob import PobEngine  # noqa: PLC0415 - only validators running PoB

        return PobEngine(
            key,
            genesis.chain_id,
            genesis.validator_keys(),
            round_ms=params.round_ms,
            genesis_time_ms=genesis.genesis_time_ms,
            finality_depth=params.finality_depth,
            validators_on=validators_on,
        )
    if engine == "epob":
        from gridchain.consensus.epob import EpobEngine  # noqa: PLC0415 - only validators running ePoB

        return EpobEngine(
            key,
            genesis.chain_id,
            genesis.validator_keys(),
            round_ms=params.round_ms,
            block_interval_ms=genesis.params.block_interval_ms,
            quorum=params.epob_quorum,
        )
    raise ConfigError(f"consensus.engine {engine!r} is not available in this build")


class Node:
    def __init__(self, config: NodeConfig, *, clock: Callable[[], int] | None = None) -> None:
        """``clock`` (ms since the epoch) replaces the wall clock in tests; without it the node
        reads the wall clock moved by ``faults.clock_offset_ms`` (0 outside fault tests)."""
        self.config = config
        self.name = config.node.name
        self.log = structlog.get_logger("gridchain.node")
        try:
            genesis_doc = config.node.genesis_file.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"node.genesis_file: cannot read {config.node.genesis_file}: {exc}"
            ) from None
        self.genesis = parse_genesis(genesis_doc)
        check_faults_allowed(config, self.genesis.chain_name)
        self.clock = clock if clock is not None else skewed_clock(config.faults.clock_offset_ms)
        self.chain_id = self.genesis.chain_id
        self.key = config.signing_key
        opener = validator_opener(self.genesis, self.key.public_key, config.encryption_key)
        self.app = Application(self.genesis, opener)
        #: worker processes for the signatures of large unseen blocks, their transactions'
        #: (ADR 0040) and their meter readings' (ADR 0056), if configured
        self.verify_pool = (
            VerifyPool(config.mempool.verify_workers) if config.mempool.verify_workers else None
        )
        if self.verify_pool is not None:
            self.app.signatures.use_batch(self.verify_pool, config.mempool.verify_batch_min)
            self.app.readings.use_batch(self.verify_pool, config.mempool.verify_batch_min)
        self.metrics = NodeMetrics()
        self.store = Store(config.node.data_dir)
        self.metrics.ledger_memory.set_function(self.store.memory_bytes)
        self._genesis_doc = genesis_doc
        try:
            self._load()
        except BaseException:
            self.store.close()
            raise
        self.snapshots = SnapshotServer(self.store)
        self._state_source: SnapshotPeers | None = None
        #: Set while a state snapshot is fetched and installed: peer input is refused meanwhile.
        self._syncing_state = False
        self._timer: asyncio.TimerHandle | None = None
        self._subscribers: set[Subscription] = set()
        self._stopped = False
        self.network: PeerLink | None = None
        self._linked_validators: set[bytes] = set()
        self._linked_gateways: tuple[bytes, ...] = self.genesis.gateway_keys()
        #: the first height of the set that removed this validator (None: not removed)
        self._removed_at: int | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._schedule_timer: asyncio.TimerHandle | None = None
        self._commit_started: float | None = None
        after_ms = config.mempool.reannounce_after_ms
        self._reannouncer = Reannouncer(
            after_ms=after_ms,
            max_backoff_ms=max(after_ms, REANNOUNCE_MAX_BACKOFF_MS),
            max_per_round=REANNOUNCE_MAX_PER_ROUND,
        )
        self._reannounce_timer: asyncio.TimerHandle | None = None
        #: returns the heap's free pages and the ledger's mapped table pages to the kernel once
        #: commits pause (ADR 0046, ADR 0054)
        self._heap_trim = QuietTrim(trim_at_rest(self.store.path, self.store.history_path))

    # --- what the API and the tools read (the driver holds it) ---------------------------

    @property
    def engine(self) -> Engine:
        return self.driver.engine

    @property
    def state(self) -> MerkleState:
        return self.driver.state

    @property
    def head(self) -> ChainHead:
        return self.driver.head

    @property
    def pending(self) -> PendingChain:
        return self.driver.pending

    @property
    def halted(self) -> str | None:
        return self.driver.halted

    # --- start-up and recovery ----------------------------------------------------------

    def _load(self) -> None:
        """Recover the committed state from the store and build the mempool and driver on it
        (at start, and again after a state snapshot was installed)."""
        state, head = self._recover(self._genesis_doc)
        verifier = RememberedVerify()
        engine = make_engine(self.genesis, self.key, verifier, self._validators_on)
        config = self.config
        self.mempool = Mempool(
            self.app,
            state,
            lambda: self.driver.next_context(self.clock()),
            max_txs=config.mempool.max_txs,
            max_bytes=config.mempool.max_bytes,
        )
        self.driver = ChainDriver(
            genesis=self.genesis,
            app=self.app,
            engine=engine,
            state=state,
            head=head,
            mempool=self.mempool,
            proposer=self.key.public_key,
            known_effects=self.mempool.effect_of,
            verifier=verifier,
        )
        self.metrics.height.set(head.height)

    def _validators_on(self, parent: bytes, height: int) -> tuple[bytes, ...]:
        """The driver's set of a height on a branch, for the engine (late-bound: the driver is
        built after the engine, and again after a state snapshot)."""
        return self.driver.validators_on(parent, height)

    def _recover(self, genesis_doc: bytes) -> tuple[MerkleState, ChainHead]:
        """Load the committed state and check it against the head block's state root."""
        genesis_state = self.app.genesis_state()
        bind_genesis(self.store, self.chain_id, genesis_doc, genesis_state)
        # The tree is read from the ledger (no rebuild at start); the root check below is
        # what vouches for it.
        state, self.tree_nodes = ledger_state(self.store)
        head = self.store.head_height()
        if head > 0:
            committed = self.store.get_block(head)
            if committed is None:
                raise StateDivergenceError(f"the ledger names head {head} but has no such block")
            if state.root() != committed.block.header.state_root:
                raise StateDivergenceError(
                    f"stored state does not match the state root of block {head}"
                )
            return state, head_of(committed.block)
        if state.root() != genesis_state.root():
            raise StateDivergenceError("stored genesis state differs from genesis.json")
        return state, ChainHead(0, self.chain_id, self.genesis.genesis_time_ms)

    async def start(self) -> None:
        self.log.info(
            "node starting",
            chain_id=self.chain_id.hex(),
            height=self.head.height,
            engine=self.engine.name,
            validator=self.key.public_key.hex(),
        )
        if self.config.faults.clock_offset_ms:
            self.log.warning(
                "clock skewed for fault testing", clock_offset_ms=self.config.faults.clock_offset_ms
            )
        if self.network is not None:
            self._link_validators()
            await self.network.start()
            if self._state_source is not None and self.config.state_sync.enabled:
                await self._sync_state(self._state_source)
            self._arm_reannounce()
        records = self.store.consensus_records()
        self._perform(self.driver.start(records, self.clock()))
        self._heap_trim.touch()  # loading the ledger's state freed its temporaries

    def attach_network(
        self, network: PeerLink, *, state_source: SnapshotPeers | None = None
    ) -> None:
        """Give the node its peer links (before start); solo validators have none.
        ``state_source`` (the same network) lets it start from a state snapshot (ADR 0039)."""
        self.network = network
        self._state_source = state_source

    async def _sync_state(self, source: SnapshotPeers) -> None:
        """Install a certified state snapshot if the peers are far ahead (node/state_sync.py)."""
        settings = self.config.state_sync
        self._syncing_state = True
        started = time.perf_counter()
        try:
            snapshot = await sync_from_peers(
                source,
                self.head.height,
                settings.min_gap_blocks,
                self._check_snapshot_block,
                lambda: self._peer_heights(source, settings.wait_for_peers_s),
            )
            if snapshot is not None:
                self._install(snapshot, time.perf_counter() - started)
        finally:
            self._syncing_state = False

    async def _peer_heights(self, source: SnapshotPeers, wait_s: float) -> dict[bytes, int]:
        """The peers' heights once one announced a height or ``wait_s`` passed."""
        step_s = 0.05
        for _ in range(int(wait_s / step_s)):
            if heights := source.peer_heights():
                return heights
            await asyncio.sleep(step_s)
        return source.peer_heights()

    def _check_snapshot_block(self, committed: CommittedBlock) -> None:
        """The snapshot's block proves its commit under the engine's rule, as a fetched block
        must (node/driver.py); raises CertificateError or a SignatureError."""
        block = committed.block
        check_certificate(
            committed.certificate, block, self.engine.commit_rule(block), self.chain_id
        )

    def _install(self, snapshot: VerifiedSnapshot, seconds: float) -> None:
        self.store.install_snapshot(
            snapshot.committed, snapshot.entries.items(), snapshot.tree.items()
        )
        self._load()
        self.log.info(
            "state snapshot installed",
            height=snapshot.height,
            entries=len(snapshot.entries),
            state_root=snapshot.committed.block.header.state_root.hex(),
            seconds=round(seconds, 3),
        )

    def _link_validators(self) -> None:
        """Tell the network which keys are validators: the sets of the head and the next two
        heights, so a validator admitted on chain links (and catches up) before its first vote
        counts, and one removed is demoted one block after its last height (ADR 0035)."""
        if self.network is None:
            return
        height = self.driver.head.height
        keys = {k for h in range(height, height + 3) for k in self.driver.validators_for(h)}
        if keys != self._linked_validators:
            self._linked_validators = keys
            self.network.set_validators(keys)
        gateways = gateways_in_force(self.driver.state, self.genesis)
        if gateways != self._linked_gateways:
            # the chain's gateway set (ADR 0043): genesis's until the council changes it
            self._linked_gateways = gateways
            self.network.set_gateways(gateways)
        self._note_removal()

    def _note_removal(self) -> None:
        """A validator removed from the set stops dialing the others once the change is
        committed (they refuse its links from its removal height on, ADR 0044): it says so
        once, then serves its chain up to there without linking again."""
        if self._removed_at is not None or self.network is None:
            return
        epochs = validator_schedule(self.driver.state, self.genesis)
        removed_at = removed_from(epochs, self.key.public_key)
        if removed_at is None:
            return
        self._removed_at = removed_at
        self.log.warning(
            "removed from the validator set",
            removed_at=removed_at,
            last_height=removed_at - 1,
            height=self.driver.head.height,
        )
        self.network.stop_dialing()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._schedule_timer is not None:
            self._schedule_timer.cancel()
        if self._reannounce_timer is not None:
            self._reannounce_timer.cancel()
        self._heap_trim.cancel()
        if self._sync_task is not None:
            self._sync_task.cancel()
        if self.network is not None:
            await self.network.stop()
        self.snapshots.close()
        self.store.close()
        if self.verify_pool is not None:
            self.verify_pool.close()
        self.log.info("node stopped", height=self.head.height)

    # --- transactions ---------------------------------------------------------------------

    def submit(self, tx: Transaction, raw: bytes) -> bytes:
        """Admit a client transaction to the mempool and gossip it (typed error on refusal)."""
        try:
            tx_hash = self.mempool.add(tx, len(raw))
        except GridchainError as exc:
            self.metrics.txs_rejected.labels(code=exc.code).inc()
            raise
        self.metrics.txs_received.inc()
        if self.network is not None:
            self.network.gossip_tx(raw)
        self._mempool_changed()
        return tx_hash

    def flush_gossip(self) -> None:
        """Queue the transactions :meth:`submit` gossiped so far on the links now, as one
        batch (the network would at the end of this turn of the event loop): the API calls
        it before it answers a client (ADR 0047)."""
        if self.network is not None:
            self.network.flush_gossip()

    def _mempool_changed(self) -> None:
        self._update_mempool_metrics()
        if not self._stopped:
            self._perform(self.driver.on_mempool_changed(self.clock()))

    # --- the peer network's callbacks (node.p2p.NetworkHandler) ---------------------------

    def on_consensus(self, sender: bytes, payload: bytes) -> None:
        """A consensus message from an authenticated validator; bad input raises (scored)."""
        if self._stopped or self._syncing_state:
            return
        self._perform(self.driver.on_consensus(sender, payload, self.clock()))

    def on_tx(self, sender: bytes, tx_bytes: bytes) -> None:
        """A gossiped transaction.  Garbage or a forged signature raises a misbehaviour error
        (the peer is scored); one that merely does not apply here (already pending, nonce
        used) raises a plain refusal, so the network neither forwards it nor scores the peer."""
        if self._syncing_state:
            raise StateSyncingError("installing a state snapshot")
        tx = decode_tx(tx_bytes)
        self.mempool.add(tx, len(tx_bytes))
        self.metrics.txs_received.inc()
        self._mempool_changed()

    def on_client_tx(self, sender: bytes, tx_bytes: bytes) -> None:
        """A client transaction a genesis gateway forwarded over its link (ADR 0024): admitted
        exactly as POST /v1/txs admits one (typed refusal raised, counted by code); the
        network gossips it to the validators once admitted."""
        try:
            if self._syncing_state:
                raise StateSyncingError("installing a state snapshot")
            tx = decode_tx(tx_bytes)
            self.mempool.add(tx, len(tx_bytes))
        except GridchainError as exc:
            self.metrics.txs_rejected.labels(code=exc.code).inc()
            raise
        self.metrics.txs_received.inc()
        self._mempool_changed()

    def note_reads(self) -> None:
        """Ledger reads or allocations outside a commit just happened (an API request, a peer
        catching up): the heap and the mapped table pages they used are given back once the
        node is quiet, as after commits (ADR 0054)."""
        self._heap_trim.touch()

    def get_blocks(self, from_height: int, count: int) -> list[bytes]:
        """Serve certified blocks to a peer that is catching up."""
        self.note_reads()
        out: list[bytes] = []
        for height in range(
            max(1, from_height), min(self.head.height, from_height + count - 1) + 1
        ):
            raw = self.store.get_block_raw(height)
            if raw is None:
                break
            out.append(raw)
        return out

    def on_peer_height(self, sender: bytes, height: int) -> None:
        if not self._stopped and not self._syncing_state:
            self._perform(self.driver.on_peer_height(height))

    def _update_mempool_metrics(self) -> None:
        self.metrics.mempool_txs.set(len(self.mempool))
        self.metrics.mempool_bytes.set(self.mempool.size_bytes)

    # --- performing the driver's effects ---------------------------------------------------

    def _perform(self, effects: list[Effect]) -> None:
        """Perform effects in order: a record or a block is durable before anything after it
        that leaves this process (a message to a peer, a commit published to clients).

        The writes of a run of effects with no message between them (the engine's records and
        at most one block) go into ONE synced LevelDB batch (ADR 0051): a validator's commit
        record and the block it certifies cost one sync instead of two.  A ``Broadcast`` or
        ``Send`` writes what is pending first, so a vote never leaves before the record that
        forbids signing another; a second block writes the first one first.  Timers, logs and
        fetch requests act only after this call returns (or touch nothing durable), so they do
        not wait for the write.  A crash can only leave the states the one-by-one writes could:
        LevelDB applies a batch whole or not at all.
        """
        writes = _PendingWrites()
        for effect in effects:
            if self._stopped:
                break
            if isinstance(effect, Persist):
                writes.records[effect.key] = effect.value
            elif isinstance(effect, CommitBatch):
                if writes.commit is not None:
                    self._write(writes)
                writes.commit = effect
            elif isinstance(effect, Broadcast):
                self._write(writes)
                if self.network is not None:
                    self.network.broadcast_consensus(effect.message.encode())
            elif isinstance(effect, Send):
                self._write(writes)
                if self.network is not None:
                    self.network.send_consensus(effect.to, effect.message.encode())
            elif isinstance(effect, SetTimer):
                self._arm_timer(effect.at_ms)
            elif isinstance(effect, ArmBoundary):
                self._arm_boundary(effect.at_ms)
            elif isinstance(effect, FetchBlocks):
                self._start_sync()
            elif isinstance(effect, ReportEvidence):
                self.metrics.evidence.labels(kind=effect.kind).inc()
                self.log.warning("misbehaviour", offender=effect.offender.hex(), kind=effect.kind)
            elif isinstance(effect, Halt):
                evidence = {
                    (f"evidence_{k}" if k in ("event", "reason") else k): v
                    for k, v in effect.evidence.items()
                }
                self.log.error("node halted", reason=effect.reason, **evidence)
            elif isinstance(effect, Note):
                getattr(self.log, effect.level)(effect.event, **dict(effect.fields))
        if not self._stopped:
            self._write(writes)

    def _write(self, writes: _PendingWrites) -> None:
        """One synced batch of what :meth:`_perform` gathered, then the block's publication."""
        commit, records = writes.commit, writes.records
        writes.commit, writes.records = None, {}
        if commit is not None:
            self._write_commit(commit, records)
        elif records:
            self.store.persist_consensus(records)

    def _write_commit(self, batch: CommitBatch, records: Mapping[bytes, bytes]) -> None:
        started = time.perf_counter()
        block = batch.committed.block
        self.store.commit_block(
            batch.committed,
            batch.writes,
            batch.tree_writes,
            archived=batch.archived,
            consensus=records,
        )
        self.tree_nodes.written(batch.tree_writes)
        self._heap_trim.touch()
        elapsed = time.perf_counter() - started
        self.metrics.commit_seconds.observe(elapsed)
        self.metrics.blocks.inc()
        self.metrics.txs.inc(len(block.txs))
        self.metrics.height.set(block.height)
        self._update_mempool_metrics()
        if self.network is not None and self.network.has_gateway_links:
            self.network.announce_block(batch.committed.encode())
        self._link_validators()
        self.log.info(
            "block committed",
            height=block.height,
            hash=batch.event.block_hash.hex(),
            txs=len(block.txs),
            dropped=batch.dropped,
            ms=round(elapsed * 1000, 2),
            fetched=batch.fetched,
        )
        for subscription in list(self._subscribers):
            if subscription.queue.full():
                # A slow reader costs no memory: it is cut off, and told so (overflowed).
                self._subscribers.discard(subscription)
                subscription.overflowed.set()
            else:
                subscription.queue.put_nowait(batch.event)

    # --- timers -----------------------------------------------------------------------------

    def _arm_timer(self, at_ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, (at_ms - self.clock()) / 1000)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._stopped:
            self._perform(self.driver.on_tick(self.clock()))

    def _arm_boundary(self, at_ms: int) -> None:
        """Wake at the next interval boundary: vehicles may then need a decision block."""
        if self._schedule_timer is not None:
            self._schedule_timer.cancel()
        delay = max(0.0, (at_ms - self.clock()) / 1000)
        self._schedule_timer = asyncio.get_running_loop().call_later(delay, self._on_boundary)

    def _on_boundary(self) -> None:
        self._schedule_timer = None
        if not self._stopped:
            self._update_mempool_metrics()
            self._perform(self.driver.on_boundary(self.clock()))

    def _arm_reannounce(self) -> None:
        period_s = min(self._reannouncer.after_ms // 3, 1_000) / 1000
        self._reannounce_timer = asyncio.get_running_loop().call_later(
            period_s, self._on_reannounce
        )

    def _on_reannounce(self) -> None:
        """Flood again the pending transactions that are due (node/reannounce.py says why)."""
        self._reannounce_timer = None
        if self._stopped or self.network is None:
            return
        for tx_hash in self._reannouncer.due(self.mempool.hashes(), self.clock()):
            tx = self.mempool.get(tx_hash)
            if tx is not None:
                self.network.reannounce_tx(tx.encode())
                self.metrics.txs_reannounced.inc()
        self._arm_reannounce()

    # --- catching up --------------------------------------------------------------------

    def _start_sync(self) -> None:
        if self.network is None or self._stopped:
            return
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        """Fetch what the driver asks for and hand it the certified blocks, with backoff."""
        assert self.network is not None
        failures = 0
        while not self._stopped and (request := self.driver.next_fetch()) is not None:
            start, count = request
            try:
                raws = await self.network.fetch_blocks(start, count)
            except (GridchainError, OSError, TimeoutError) as exc:
                self.log.info("block fetch failed", height=start, reason=str(exc))
                raws = []
            blocks: list[CommittedBlock] = []
            for raw in raws:
                try:
                    blocks.append(decode_committed(raw))
                except DecodeError as exc:
                    self.log.warning("fetched block undecodable", reason=exc.message)
                    break
            effects, progressed = self.driver.on_fetched(blocks, self.clock())
            self._perform(effects)
            if not progressed:
                failures += 1
                if failures >= 20:
                    self.log.warning(
                        "catch-up gave up", head=self.head.height, target=self.driver.sync_target
                    )
                    return
                await asyncio.sleep(min(2.0, 0.05 * failures))
            else:
                failures = 0

    # --- read side ----------------------------------------------------------------------

    def subscribe(self, max_events: int = 1024) -> Subscription:
        subscription = Subscription(max_events)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def status(self) -> dict[str, Any]:
        committed = self.store.get_block(self.head.height) if self.head.height else None
        state_root = committed.block.header.state_root if committed else self.state.root()
        return {
            "node": self.name,
            "chain_id": self.chain_id.hex(),
            "chain_name": self.genesis.chain_name,
            "height": self.head.height,
            "head_hash": self.head.block_hash.hex(),
            "head_time_ms": self.head.timestamp_ms,
            "state_root": state_root.hex(),
            "consensus": dict(self.engine.status()),
            "mempool": {"txs": len(self.mempool), "bytes": self.mempool.size_bytes},
            "validator": self.key.public_key.hex(),
            "peers": [] if self.network is None else self.network.peer_info(),
            "halted": self.halted,
        }
