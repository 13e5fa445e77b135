"""The validator runtime: the one place that does I/O around the pure engine and application.

It owns the store, the committed state, the mempool and the consensus engine, and applies the
engine's actions in order: persist (synced), send, commit, arm the timer.  Committing a block
means: check its structure and signatures, execute it on an overlay, compare the state root in
its header with the one computed here (a mismatch halts the node rather than diverge), then
write block, certificate, indexes and state writes in one synced batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from gridchain.consensus.engine import (
    Action,
    Broadcast,
    ChainHead,
    CommitBlock,
    Engine,
    Persist,
    ReportEvidence,
    RequestProposal,
    Send,
    SetTimer,
    SyncTo,
    ValidateBlock,
)
from gridchain.consensus.solo import SoloEngine
from gridchain.genesis.schema import Genesis, parse_genesis
from gridchain.market.app import Application, BlockContext, Execution
from gridchain.market.cd_schedule import Decision
from gridchain.market.errors import BlockRejectedError
from gridchain.market.orders import MarketEvent, OrderEvent
from gridchain.market.pending import PendingChain
from gridchain.market.state import MerkleState
from gridchain.node.config import ConfigError, NodeConfig
from gridchain.node.mempool import Mempool
from gridchain.node.metrics import NodeMetrics
from gridchain.node.store import Store
from gridchain.protocol.block import (
    MAX_BLOCK_BYTES,
    Block,
    BlockHeader,
    Certificate,
    CommittedBlock,
    check_block_structure,
    decode_committed,
    schedule_root,
    tx_root,
)
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import DecodeError, GridchainError, SignatureError
from gridchain.protocol.tx import Transaction, decode_tx

#: How far ahead of this node's clock a block's timestamp may be (clocks of peer devices drift).
MAX_FUTURE_DRIFT_MS = 10_000
#: Blocks asked for in one catch-up request.
SYNC_BATCH = 64


class PeerLink(Protocol):
    """What the runtime needs from the peer network (node.p2p.PeerNetwork)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def broadcast_consensus(self, payload: bytes) -> None: ...

    def send_consensus(self, to: bytes, payload: bytes) -> None: ...

    def gossip_tx(self, tx_bytes: bytes) -> None: ...

    async def fetch_blocks(self, from_height: int, count: int) -> list[bytes]: ...

    def peer_info(self) -> list[dict[str, Any]]: ...


class UnknownParentError(BlockRejectedError):
    """A block on a parent this node has neither committed nor validated."""

    code = "unknown_parent"


class StateDivergenceError(GridchainError):
    """This node computed another state than the block certifies: stop rather than diverge."""

    code = "state_divergence"
    http_status = 500


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class CommitEvent:
    height: int
    block_hash: bytes
    tx_hashes: tuple[bytes, ...]
    timestamp_ms: int
    #: Trades and order changes of the block, in execution order.
    market_events: tuple[MarketEvent, ...] = ()
    #: The C&D setpoints this block decided, if it decided an interval.
    decision: Decision | None = None


def _needs_recheck(events: tuple[MarketEvent, ...]) -> bool:
    """Whether a block did something at its time that the mempool's simulation could not."""
    return any(isinstance(e, OrderEvent) and e.kind in ("expired", "rejected") for e in events)


def make_engine(genesis: Genesis, key: SigningKey) -> Engine:
    engine = genesis.consensus.engine
    if engine == "solo":
        if key.public_key not in genesis.validator_keys():
            raise ConfigError("node.private_key is not the key of the genesis validator")
        return SoloEngine(key, genesis.chain_id, genesis.params.block_interval_ms)
    if key.public_key not in genesis.validator_keys():
        raise ConfigError("node.private_key is not the key of any genesis validator")
    if engine == "pbft":
        from gridchain.consensus.pbft import PbftEngine  # noqa: PLC0415 - only validators running PBFT

        return PbftEngine(
            key,
            genesis.chain_id,
            genesis.validator_keys(),
            block_interval_ms=genesis.params.block_interval_ms,
            view_timeout_ms=genesis.consensus.view_timeout_ms,
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
    def __init__(self, config: NodeConfig, *, clock: Callable[[], int] = now_ms) -> None:
        self.config = config
        self.clock = clock
        self.name = config.node.name
        self.log = structlog.get_logger("gridchain.node")
        try:
            genesis_doc = config.node.genesis_file.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"node.genesis_file: cannot read {config.node.genesis_file}: {exc}"
            ) from None
        self.genesis = parse_genesis(genesis_doc)
        self.chain_id = self.genesis.chain_id
        self.key = config.signing_key
        self.app = Application(self.genesis)
        self.metrics = NodeMetrics()
        self.store = Store(config.node.data_dir)
        try:
            self.state = self._recover(genesis_doc)
            self.engine = make_engine(self.genesis, self.key)
        except BaseException:
            self.store.close()
            raise
        self.mempool = Mempool(
            self.app,
            self.state,
            self._next_context,
            max_txs=config.mempool.max_txs,
            max_bytes=config.mempool.max_bytes,
        )
        self._executions: dict[bytes, Execution] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._subscribers: set[asyncio.Queue[CommitEvent]] = set()
        self._halted: str | None = None
        self._stopped = False
        self.network: PeerLink | None = None
        self._pending_notified = False
        self._sync_target = 0
        self._sync_task: asyncio.Task[None] | None = None
        self._mempool_dirty = False
        self.pending = PendingChain(self.head.block_hash, self.head.height)
        self._schedule_timer: asyncio.TimerHandle | None = None
        self._due_cache: tuple[tuple[bytes, int], bool] | None = None

    # --- start-up and recovery ----------------------------------------------------------

    def _recover(self, genesis_doc: bytes) -> MerkleState:
        """Load the committed state and check it against the head block's state root."""
        genesis_state = self.app.genesis_state()
        self.store.bind_chain(self.chain_id, genesis_doc, genesis_state.items())
        state = MerkleState(dict(self.store.state_items()))
        head = self.store.head_height()
        if head > 0:
            committed = self.store.get_block(head)
            if committed is None:
                raise StateDivergenceError(f"the ledger names head {head} but has no such block")
            if state.root() != committed.block.header.state_root:
                raise StateDivergenceError(
                    f"stored state does not match the state root of block {head}"
                )
            self.head = self._head_of(committed.block)
        else:
            if state.root() != genesis_state.root():
                raise StateDivergenceError("stored genesis state differs from genesis.json")
            self.head = ChainHead(0, self.chain_id, self.genesis.genesis_time_ms)
        self.metrics.height.set(self.head.height)
        return state

    @staticmethod
    def _head_of(block: Block) -> ChainHead:
        return ChainHead(block.height, block.hash(), block.header.timestamp_ms)

    def _next_context(self) -> BlockContext:
        return BlockContext(
            self.head.height + 1, max(self.clock(), self.head.timestamp_ms + 1), b""
        )

    async def start(self) -> None:
        self.log.info(
            "node starting",
            chain_id=self.chain_id.hex(),
            height=self.head.height,
            engine=self.engine.name,
            validator=self.key.public_key.hex(),
        )
        records = self.store.consensus_records()
        if self.network is not None:
            await self.network.start()
        self._apply(self.engine.start(self.head, records, self.clock()))
        self._arm_schedule_timer()

    def _schedule_due(self) -> bool:
        """Whether vehicles wait for a decision block now (cached per head and interval,
        because the mempool asks on every transaction)."""
        now = self.clock()
        key = (self.head.block_hash, self.app.interval_clock.interval_at(now))
        if self._due_cache is None or self._due_cache[0] != key:
            self._due_cache = (key, self.app.schedule_due(self.state, now))
        return self._due_cache[1]

    def _arm_schedule_timer(self) -> None:
        """Wake at the next interval boundary: vehicles may then need a decision block."""
        if self._stopped:
            return
        clock = self.app.interval_clock
        now = self.clock()
        boundary = clock.start_ms(clock.interval_at(now) + 1)
        delay = max(0.0, (boundary - now + 1) / 1000)
        self._schedule_timer = asyncio.get_running_loop().call_later(delay, self._on_boundary)

    def _on_boundary(self) -> None:
        self._schedule_timer = None
        if self._stopped or self._halted:
            return
        try:
            self._mempool_changed()
        except GridchainError as exc:
            self._halt(exc)
        self._arm_schedule_timer()

    def attach_network(self, network: PeerLink) -> None:
        """Give the node its peer links (before start); solo validators have none."""
        self.network = network

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._schedule_timer is not None:
            self._schedule_timer.cancel()
        if self._sync_task is not None:
            self._sync_task.cancel()
        if self.network is not None:
            await self.network.stop()
        self.store.close()
        self.log.info("node stopped", height=self.head.height)

    @property
    def halted(self) -> str | None:
        return self._halted

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

    def _mempool_changed(self) -> None:
        self._update_mempool_metrics()
        pending = len(self.mempool) > 0 or self._schedule_due()
        if pending != self._pending_notified and not self._stopped:
            self._pending_notified = pending
            self._apply(self.engine.on_pending_work(pending, self.clock()))

    # --- the peer network's callbacks (node.p2p.NetworkHandler) ---------------------------

    def on_consensus(self, sender: bytes, payload: bytes) -> None:
        """A consensus message from an authenticated validator; bad input raises (scored)."""
        if self._stopped or self._halted:
            return
        message = self.engine.decode_message(payload)
        self._apply(self.engine.on_message(sender, message, self.clock()))

    def on_tx(self, sender: bytes, tx_bytes: bytes) -> None:
        """A gossiped transaction.  Garbage or a forged signature raises a misbehaviour error
        (the peer is scored); one that merely does not apply here (already pending, nonce
        used) raises a plain refusal, so the network neither forwards it nor scores the peer."""
        tx = decode_tx(tx_bytes)
        self.mempool.add(tx, len(tx_bytes))
        self.metrics.txs_received.inc()
        self._mempool_changed()

    def get_blocks(self, from_height: int, count: int) -> list[bytes]:
        """Serve certified blocks to a peer that is catching up."""
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
        if height > self.head.height:
            self._request_sync(height)

    def _update_mempool_metrics(self) -> None:
        self.metrics.mempool_txs.set(len(self.mempool))
        self.metrics.mempool_bytes.set(self.mempool.size_bytes)

    # --- engine actions -------------------------------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        """Apply a batch in order; persisted records are synced before anything else."""
        pending = list(actions)
        while pending and not self._stopped:
            action = pending.pop(0)
            if isinstance(action, Persist):
                self.store.persist_consensus({action.key: action.value})
            elif isinstance(action, Broadcast):
                if self.network is not None:
                    self.network.broadcast_consensus(action.message.encode())
            elif isinstance(action, Send):
                if self.network is not None:
                    self.network.send_consensus(action.to, action.message.encode())
            elif isinstance(action, RequestProposal):
                block = self._build_proposal(action)
                pending.extend(self.engine.on_proposal(block, self.clock()))
            elif isinstance(action, ValidateBlock):
                reason = self._check_proposal(action.block)
                pending.extend(
                    self.engine.on_block_validated(
                        action.block.hash(), reason is None, self.clock(), reason or ""
                    )
                )
            elif isinstance(action, CommitBlock):
                if self._commit(action.block, action.certificate):
                    pending.extend(self.engine.on_block_committed(self.head, self.clock()))
            elif isinstance(action, SyncTo):
                self._request_sync(action.height)
            elif isinstance(action, SetTimer):
                self._arm_timer(action.at_ms)
            elif isinstance(action, ReportEvidence):
                self.metrics.evidence.labels(kind=action.kind).inc()
                self.log.warning("misbehaviour", offender=action.offender.hex(), kind=action.kind)
        if self._mempool_dirty and not self._stopped:
            # A proposal evicted transactions: tell the engine once its batch is done.
            self._mempool_dirty = False
            self._mempool_changed()

    def _arm_timer(self, at_ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, (at_ms - self.clock()) / 1000)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._stopped or self._halted:
            return
        try:
            self._apply(self.engine.on_tick(self.clock()))
        except GridchainError as exc:
            self._halt(exc)

    def _halt(self, exc: GridchainError) -> None:
        self._halted = f"{exc.code}: {exc.message}"
        self.log.error("node halted", reason=self._halted)

    # --- proposals and commits ------------------------------------------------------------

    def _build_proposal(self, req: RequestProposal) -> Block | None:
        """Build a block on the committed head or on a pending block (pob) and keep its
        execution for the commit.  With nothing to trade and no interval to decide there is no
        block unless genesis asks for empty blocks."""
        on_head = req.prev_hash == self.head.block_hash
        if on_head:
            if req.height != self.head.height + 1:
                return None
            parent_writes: dict[bytes, bytes | None] | None = None
            excluded: set[bytes] = set()
        else:
            parent = self.pending.get(req.prev_hash)
            if parent is None or req.height != parent.height + 1:
                return None
            parent_writes = self.pending.writes_after(req.prev_hash)
            excluded = self.pending.included_txs(req.prev_hash)
        params = self.genesis.params
        candidates = [
            tx
            for tx in self.mempool.reap(params.max_block_txs, MAX_BLOCK_BYTES // 2)
            if tx.hash() not in excluded
        ]
        timestamp = max(self.clock(), req.min_timestamp_ms)
        ctx = BlockContext(req.height, timestamp, self.key.public_key)
        built = self.app.build_block(self.state, candidates, ctx, parent_writes=parent_writes)
        if built.left_out:
            for tx, exc in built.left_out:
                self.log.info("transaction left out", tx=tx.hash().hex(), reason=exc.code)
            if on_head:  # on a pending branch a left-out tx may only wait for its turn
                self.mempool.evict([tx.hash() for tx, _ in built.left_out])
                self._mempool_dirty = True
        txs = tuple(built.txs)
        if not txs and not built.schedule and not params.empty_blocks and not req.allow_empty:
            return None
        execution = built.execution
        header = BlockHeader(
            chain_id=self.chain_id,
            height=req.height,
            prev_hash=req.prev_hash,
            timestamp_ms=timestamp,
            proposer=self.key.public_key,
            round=req.round,
            benefit=built.benefit,
            tx_root=tx_root(txs),
            schedule_root=schedule_root(built.schedule),
            state_root=execution.state_root,
        )
        block = Block(header, txs, built.schedule)
        self._remember(block, execution)
        return block

    def _remember(self, block: Block, execution: Execution) -> None:
        """Keep a valid block's execution: for its commit, and as a parent for pob's forks."""
        block_hash = block.hash()
        self._executions[block_hash] = execution
        if block_hash not in self.pending:
            self.pending.add(
                block_hash,
                block.header.prev_hash,
                block.height,
                execution.writes,
                timestamp_ms=block.header.timestamp_ms,
                tx_hashes=frozenset(tx.hash() for tx in block.txs),
            )

    def validate_block(self, block: Block) -> Execution:
        """Everything a validator checks before it accepts a block on its parent.

        The parent is the committed head, or for pob a pending block this node validated.
        """
        header = block.header
        if header.prev_hash == self.head.block_hash:
            parent_height, parent_ms = self.head.height, self.head.timestamp_ms
            parent_writes: dict[bytes, bytes | None] | None = None
        else:
            parent = self.pending.get(header.prev_hash)
            if parent is None:
                raise UnknownParentError("block does not extend the committed head")
            parent_height, parent_ms = parent.height, parent.timestamp_ms
            parent_writes = self.pending.writes_after(header.prev_hash)
        if header.height != parent_height + 1:
            raise BlockRejectedError(f"block {header.height} does not follow {parent_height}")
        if header.timestamp_ms <= parent_ms:
            raise BlockRejectedError("block timestamp does not advance")
        if header.timestamp_ms > self.clock() + MAX_FUTURE_DRIFT_MS and header.height > 0:
            raise BlockRejectedError("block timestamp is too far in the future")
        if header.proposer not in self.genesis.validator_keys():
            raise BlockRejectedError("block proposer is not a validator")
        cached = self._executions.get(block.hash())
        if cached is not None:
            return cached  # built or validated here before
        check_block_structure(block, self.chain_id, self.mempool)
        ctx = BlockContext(header.height, header.timestamp_ms, header.proposer)
        execution = self.app.execute_block(
            self.state,
            block.txs,
            ctx,
            schedule=block.schedule,
            benefit=header.benefit,
            parent_writes=parent_writes,
        )
        if execution.state_root != header.state_root:
            raise BlockRejectedError("block state root differs from the executed state")
        return execution

    def _check_proposal(self, block: Block) -> str | None:
        """Answer an engine's ValidateBlock: None if valid, else the refusal's error code."""
        try:
            execution = self.validate_block(block)
        except GridchainError as exc:
            self.log.warning(
                "proposal rejected", height=block.height, code=exc.code, reason=exc.message
            )
            return exc.code
        self._remember(block, execution)
        return None

    def _commit(self, block: Block, certificate: Certificate, *, fetched: bool = False) -> bool:
        """Verify, execute and durably write a certified block.

        A block the engine decided must commit; failing is a bug or a divergence and halts the
        node.  A fetched block with a bad certificate is only a lying peer: it is dropped.  A
        fetched block whose certificate is valid but whose execution differs halts the node:
        a quorum certified a state this node cannot reproduce.
        """
        started = time.perf_counter()
        try:
            signers, quorum = self.engine.certifiers(block)
            certificate.verify(self.chain_id, signers, quorum)
            if certificate.vote.block_hash != block.hash():
                raise SignatureError("certificate is for another block")
            if certificate.vote.height != block.height:
                raise SignatureError("certificate is for another height")
        except GridchainError as exc:
            if fetched:
                self.log.warning("fetched block refused", height=block.height, reason=exc.message)
                return False
            self._halt(exc)
            return False
        try:
            execution = self.validate_block(block)
        except GridchainError as exc:
            self.log.error("commit refused", height=block.height, reason=exc.message)
            self._halt(StateDivergenceError(f"certified block {block.height}: {exc.message}"))
            return False
        if block.header.prev_hash != self.head.block_hash:
            if fetched:  # a certified block of a branch that lost (pob): not ours to commit
                self.log.warning("fetched block is on another branch", height=block.height)
                return False
            self._halt(StateDivergenceError(f"block {block.height} does not extend the head"))
            return False
        self.store.commit_block(CommittedBlock(block, certificate), execution.writes)
        self.state.apply(execution.writes)
        self.head = self._head_of(block)
        self.pending.committed(self.head.block_hash, self.head.height)
        self._executions = {h: e for h, e in self._executions.items() if h in self.pending}
        dropped = self.mempool.update_after_commit(
            list(block.txs), recheck=_needs_recheck(execution.events)
        )
        self._mempool_changed()
        elapsed = time.perf_counter() - started
        self.metrics.commit_seconds.observe(elapsed)
        self.metrics.blocks.inc()
        self.metrics.txs.inc(len(block.txs))
        self.metrics.height.set(block.height)
        self._update_mempool_metrics()
        self.log.info(
            "block committed",
            height=block.height,
            hash=block.hash().hex(),
            txs=len(block.txs),
            dropped=len(dropped),
            ms=round(elapsed * 1000, 2),
        )
        event = CommitEvent(
            block.height,
            block.hash(),
            tuple(tx.hash() for tx in block.txs),
            block.header.timestamp_ms,
            execution.events,
            execution.decision,
        )
        for queue in list(self._subscribers):
            if queue.full():
                self._subscribers.discard(queue)  # a slow reader loses its feed, not our memory
            else:
                queue.put_nowait(event)
        return True

    # --- catching up --------------------------------------------------------------------

    def _request_sync(self, height: int) -> None:
        if self.network is None or self._stopped or height <= self.head.height:
            return
        self._sync_target = max(self._sync_target, height)
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        """Fetch certified blocks up to the target height and commit them in order."""
        assert self.network is not None
        failures = 0
        while self.head.height < self._sync_target and not self._stopped and not self._halted:
            start = self.head.height + 1
            count = min(SYNC_BATCH, self._sync_target - self.head.height)
            try:
                raws = await self.network.fetch_blocks(start, count)
            except (GridchainError, OSError, TimeoutError) as exc:
                self.log.info("block fetch failed", height=start, reason=str(exc))
                raws = []
            progressed = False
            for raw in raws:
                try:
                    committed = decode_committed(raw)
                except DecodeError as exc:
                    self.log.warning("fetched block undecodable", reason=exc.message)
                    break
                height = committed.block.height
                if height <= self.head.height:
                    continue  # committed meanwhile by consensus
                if height != self.head.height + 1:
                    break
                if not self._commit(committed.block, committed.certificate, fetched=True):
                    break
                progressed = True
                self._apply(self.engine.on_block_committed(self.head, self.clock()))
            if not progressed:
                failures += 1
                if failures >= 20:
                    self.log.warning(
                        "catch-up gave up", head=self.head.height, target=self._sync_target
                    )
                    return
                await asyncio.sleep(min(2.0, 0.05 * failures))
            else:
                failures = 0

    # --- read side ----------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[CommitEvent]:
        queue: asyncio.Queue[CommitEvent] = asyncio.Queue(maxsize=1024)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[CommitEvent]) -> None:
        self._subscribers.discard(queue)

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
            "halted": self._halted,
        }
