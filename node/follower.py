"""Follow the chain over the peer links without taking part: the network side of a gateway.

A :class:`Follower` holds a gateway key (genesis.gateways, ADR 0024, or one the council
admitted, ADR 0043).  It dials the
validators of its config over the same authenticated links validators use, receives every
block they commit (``NewBlock``: block + commit certificate), fetches the ranges it missed, and
accepts a block only when its certificate proves it under the genesis validator set
(consensus.certificates, the engine's commit rule) and its transaction and schedule roots
match the header.  It never executes a block: a gateway cannot read sealed transaction bodies
(issue 13), and a quorum's certificate is the evidence that the block is the chain's.

From the certified blocks' transaction envelopes (sender, nonce, and the body where it is
readable) and genesis it derives what a gateway's filters need: the registered senders (genesis
participants, the governance key, genesis bridge keys, then every RegisterParticipant and
RegisterMeter that committed) and each sender's next nonce.  This is exact because a committed
block holds only transactions that applied, and every transaction that applies moves its
sender's nonce from ``n`` to ``n + 1`` (market/app.py).

:meth:`Follower.submit` forwards a transaction to validators over the links; a validator admits
it like POST /v1/txs would and answers with its verdict, which comes back as a typed error.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import structlog

from gridchain.consensus.certificates import check_certificate, genesis_commit_rule
from gridchain.genesis.schema import Genesis, parse_genesis
from gridchain.market.council import council_after
from gridchain.market.validators import (
    PendingValidatorChange,
    ValidatorEpoch,
    advance_pending,
    pob_pending_change,
    schedule_change,
    set_at,
)
from gridchain.node.config import ConfigError
from gridchain.node.follower_config import GatewayLinkSection
from gridchain.node.p2p import (
    NetworkTuning,
    NoValidatorLinkError,
    PeerAddress,
    PeerNetwork,
)
from gridchain.node.p2p.errors import TxRefusedError
from gridchain.node.p2p.frames import MAX_BLOCKS_PER_REQUEST
from gridchain.protocol.block import (
    BlockHeader,
    CommittedBlock,
    decode_committed,
    schedule_root,
    tx_root,
)
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import DecodeError, GridchainError, ValidationError
from gridchain.protocol.governance import ReplaceBridgeKey, UpdateCouncil, decode_proposed
from gridchain.protocol.tx import (
    Approve,
    Propose,
    RegisterMeter,
    RegisterParticipant,
    Transaction,
    UpdateValidators,
)

_log = structlog.get_logger("gridchain.follower")

#: Certified blocks kept in memory for readers (older ones are dropped; the derived senders
#: and nonces cover the whole chain), at most this many...
DEFAULT_KEEP_BLOCKS = 4096
#: ...and at most this many bytes of their encodings.  They are kept encoded and decoded when
#: read: a decoded block of meter readings holds about eight times its encoding, so 4,096
#: decoded blocks of a 200-household community were hundreds of MiB and grew with the chain
#: until the count bound; the gateway itself reads none of them (its reads are relayed).
DEFAULT_KEEP_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FollowedHead:
    """The newest certified block the follower accepted (height 0: none yet, genesis)."""

    height: int
    block_hash: bytes
    timestamp_ms: int


class BlockFeed:
    """One reader's feed of certified blocks in height order, bounded by ``max_blocks``.

    A reader that falls that far behind is dropped and ``overflowed`` is set, like a node's
    websocket subscriber (node.runtime.Subscription).
    """

    def __init__(self, max_blocks: int) -> None:
        self.queue: asyncio.Queue[CommittedBlock] = asyncio.Queue(maxsize=max_blocks)
        self.overflowed = asyncio.Event()


def proposed_record(body: Propose) -> object:
    """The record a council proposal carries (None if it does not decode).

    A gateway cannot tell from blocks alone when a proposal reaches its threshold (that is
    chain state), so it lets a key through from its proposal on: the gateway only filters
    floods; the validators still refuse a key the council did not admit (ADR 0034).
    """
    try:
        return decode_proposed(body.record)
    except DecodeError:
        return None


class Follower:
    """Certified blocks, senders and nonces of one chain, learnt over gateway links.

    ``validators`` are the validators to dial (their keys must be genesis validators).
    Everything runs on the event loop of :meth:`start`; the read methods are plain calls.
    """

    def __init__(
        self,
        genesis: Genesis,
        key: SigningKey,
        validators: Sequence[PeerAddress],
        *,
        tuning: NetworkTuning | None = None,
        keep_blocks: int = DEFAULT_KEEP_BLOCKS,
        keep_bytes: int = DEFAULT_KEEP_BYTES,
    ) -> None:
        # A key the council admits later (UpdateGateways, ADR 0043) is a gateway too: it
        # dials, and the validators refuse its links until the chain admits it.
        if key.public_key in genesis.validator_keys():
            raise ConfigError("the follower's key is a validator's, not a gateway's")
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.key = key
        self._keep_blocks = keep_blocks
        self._keep_bytes = keep_bytes
        self._head = FollowedHead(0, self.chain_id, genesis.genesis_time_ms)
        #: height -> the certified block's encoding (the newest first out of the bounds last)
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._kept_bytes = 0
        self._nonces: dict[bytes, int] = {}
        self._senders: set[bytes] = {p.public_key_bytes for p in genesis.participants}
        self._senders.add(bytes.fromhex(genesis.governance_public_key))
        self._senders.update(bytes.fromhex(m.bridge_public_key) for m in genesis.meters)
        self._council = frozenset(genesis.council_keys())
        self._threshold = genesis.threshold
        #: Council proposals of a set or council change not yet at their threshold:
        #: id -> (change, who approved).
        self._proposed_changes: dict[
            bytes, tuple[UpdateValidators | UpdateCouncil, set[bytes]]
        ] = {}
        self._senders.update(self._council)
        self._feeds: set[BlockFeed] = set()
        #: Set (and replaced) each time the head advances; wait_for_height waits on it.
        self._advanced = asyncio.Event()
        self._sync_task: asyncio.Task[None] | None = None
        self._best_peer_height = 0
        self._validators = genesis.validator_keys()
        #: the validator set's epochs, replayed from the UpdateValidators of followed blocks
        self._epochs: tuple[ValidatorEpoch, ...] = (ValidatorEpoch(0, self._validators),)
        #: PoB: the change committed and not in force yet, with its run (ADR 0049)
        self._pending: PendingValidatorChange | None = None
        self.network = PeerNetwork(
            key=key,
            chain_id=self.chain_id,
            validators=self._validators,
            gateways=(*genesis.gateway_keys(), key.public_key),
            listen_host=None,
            listen_port=0,
            peers=validators,
            follower=self,
            local_height=lambda: self._head.height,
            tuning=tuning,
        )
        self._log = _log.bind(gateway=key.public_key.hex()[:16])

    @classmethod
    def from_config(
        cls, section: GatewayLinkSection, *, tuning: NetworkTuning | None = None
    ) -> Follower:
        """A follower for a gateway config's ``[gateway]`` table (node.follower_config)."""
        try:
            genesis = parse_genesis(section.genesis_file.read_bytes())
        except OSError as exc:
            raise ConfigError(f"gateway.genesis_file: cannot read it: {exc}") from None
        peers = [PeerAddress.from_config(entry) for entry in section.validators]
        tuned = replace(tuning or NetworkTuning(), handshake_timeout_s=section.handshake_timeout_s)
        return cls(genesis, section.signing_key, peers, tuning=tuned)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Dial the validators; blocks arrive as they commit and missed ranges are fetched."""
        await self.network.start()
        self._start_sync()

    async def stop(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        await self.network.stop()

    # --- what a gateway reads ---------------------------------------------------------------

    @property
    def head(self) -> FollowedHead:
        return self._head

    def block(self, height: int) -> CommittedBlock | None:
        """A certified block still held in memory (the last ``keep_blocks``, at most
        ``keep_bytes`` of encodings), decoded again for the reader."""
        raw = self._blocks.get(height)
        return None if raw is None else decode_committed(raw)

    def blocks(self, first: int, limit: int) -> list[CommittedBlock]:
        return [b for h in range(first, first + limit) if (b := self.block(h)) is not None]

    def kept(self) -> tuple[int, int]:
        """(blocks, bytes of their encodings) held for readers now."""
        return len(self._blocks), self._kept_bytes

    def is_registered(self, public_key: bytes) -> bool:
        """Whether a transaction signed by this key can apply at all: a participant, the
        governance key or a meter bridge key (which may send its meters' readings only)."""
        return public_key in self._senders

    def registered_senders(self) -> frozenset[bytes]:
        return frozenset(self._senders)

    def next_nonce(self, public_key: bytes) -> int:
        """The nonce the sender's next transaction must carry, as of the followed head."""
        return self._nonces.get(public_key, 0)

    def connected_validators(self) -> list[bytes]:
        return self.network.connected_peers()

    def subscribe(self, max_blocks: int = 1024) -> BlockFeed:
        """A feed of every certified block accepted from now on, in height order."""
        feed = BlockFeed(max_blocks)
        self._feeds.add(feed)
        return feed

    def unsubscribe(self, feed: BlockFeed) -> None:
        self._feeds.discard(feed)

    async def wait_for_height(self, height: int) -> FollowedHead:
        """Return once the followed head is at ``height`` or above."""
        while self._head.height < height:
            await self._advanced.wait()
        return self._head

    # --- forwarding ---------------------------------------------------------------------

    async def submit(
        self, tx: Transaction, *, fanout: int = 1, to: Sequence[bytes] | None = None
    ) -> bytes:
        """Forward ``tx`` to ``fanout`` linked validators at once; return its hash when one
        admitted it.  A validator that cannot answer (link lost, no verdict in time) is
        replaced by the next one; if every one asked refused, TxRefusedError carries the first
        refusal's code (``reason``); NoValidatorLinkError if no validator is linked.
        ``to`` names the validators to try, in order (default: the linked ones, shuffled)."""
        raw = tx.encode()
        connected = self.network.connected_peers()
        if to is None:
            linked = connected
            random.shuffle(linked)  # spread the load over the validators
        else:
            linked = [key for key in to if key in connected]
        if not linked:
            raise NoValidatorLinkError("the gateway has no live link to a validator")
        refusal: TxRefusedError | None = None
        link_error: GridchainError | None = None
        step = max(1, fanout)
        for start in range(0, len(linked), step):
            try:
                verdicts = await self.network.submit_tx(raw, linked[start : start + step])
            except NoValidatorLinkError as exc:
                link_error = exc
                continue
            for verdict in verdicts.values():
                if isinstance(verdict, GridchainError):
                    link_error = verdict
                elif not verdict.code:
                    return tx.hash()
                elif refusal is None:
                    refusal = TxRefusedError(verdict.code, verdict.message)
            if refusal is not None:
                raise refusal
        if link_error is not None:
            raise NoValidatorLinkError(f"no validator answered: {link_error.message}")
        raise NoValidatorLinkError("no validator answered")

    # --- the network's callbacks (node.p2p.FollowerHandler) ---------------------------------

    def on_new_block(self, sender: bytes, committed: bytes) -> None:
        """A block a validator just committed: accept it if it extends the head; a gap
        starts a fetch.  Bytes that are not a certified block raise (the sender is scored)."""
        block = decode_committed(committed)
        height = block.block.height
        if height <= self._head.height:
            return  # another validator's copy of a block already accepted
        if height > self._head.height + 1:
            self._best_peer_height = max(self._best_peer_height, height)
            self._start_sync()
            return
        self._accept(block, committed)

    def on_peer_height(self, sender: bytes, height: int) -> None:
        if height > self._head.height:
            self._best_peer_height = max(self._best_peer_height, height)
            self._start_sync()

    # --- accepting certified blocks ---------------------------------------------------------

    def _verify(self, committed: CommittedBlock) -> None:
        """Raise unless ``committed`` is the certified next block of the followed chain."""
        block = committed.block
        header = block.header
        if header.chain_id != self.chain_id:
            raise ValidationError("block is for another chain")
        if header.height != self._head.height + 1:
            raise ValidationError(f"block {header.height} does not follow {self._head.height}")
        if header.prev_hash != self._head.block_hash:
            raise ValidationError(f"block {header.height} does not extend the followed head")
        if tx_root(block.txs) != header.tx_root:
            raise ValidationError("tx_root does not match the block's transactions")
        if schedule_root(block.schedule) != header.schedule_root:
            raise ValidationError("schedule_root does not match the block's schedule")
        rule = genesis_commit_rule(self.genesis, block, set_at(self._epochs, header.height))
        check_certificate(committed.certificate, block, rule, self.chain_id)

    def _approve_change(self, proposal_id: bytes, member: bytes, header: BlockHeader) -> None:
        """Count a council approval of a proposed set change; apply it at the threshold.

        An approval is in a block only if the chain accepted it (a member once, before the
        proposal's expiry), so counting the approvals of committed blocks is counting what the
        chain counted; a change the chain then refused is refused by the same pure rule here.
        """
        found = self._proposed_changes.get(proposal_id)
        if found is None:
            return  # a proposal of another kind: nothing to follow
        change, approvers = found
        approvers.add(member)
        # the chain counts only the approvals of members in office (market/council.py)
        if len(approvers & self._council) >= self._threshold:
            del self._proposed_changes[proposal_id]
            if isinstance(change, UpdateCouncil):
                self._change_council(change)
            else:
                self._schedule_change(change, header.height, header.round)

    def _change_council(self, change: UpdateCouncil) -> None:
        """The council replaced itself: count its members' approvals from now on."""
        try:
            council = council_after(change, bytes.fromhex(self.genesis.governance_public_key))
        except GridchainError:
            return  # the chain refused it as well (its proposal failed)
        self._council, self._threshold = council.keys, council.threshold
        self._senders.update(council.keys)

    def _schedule_change(self, change: UpdateValidators, height: int, round_: int) -> None:
        try:
            if self.genesis.consensus.engine == "pob":
                self._pending = pob_pending_change(
                    self._epochs, self._pending, self.genesis, change, height=height, round_=round_
                )
                return
            self._epochs = schedule_change(self._epochs, self.genesis, change, height)
        except GridchainError:
            return  # the chain refused it as well (its proposal failed): the set stays
        self.network.set_validators({k for e in self._epochs[-2:] for k in e.keys})

    def _accept(self, committed: CommittedBlock, raw: bytes | None = None) -> None:
        """Take ``committed`` (decoded from ``raw``, its encoding) as the next block of the
        followed chain."""
        self._verify(committed)
        block = committed.block
        if self._pending is not None and block.height > self._pending.carried_at:
            # the same count as the chain's, before the block's transactions (ADR 0049)
            self._epochs, self._pending = advance_pending(
                self._epochs, self._pending, self.genesis, block.height, block.header.round
            )
            self.network.set_validators({k for e in self._epochs[-2:] for k in e.keys})
        for tx in block.txs:
            self._nonces[tx.sender] = tx.nonce + 1
            body: object = tx.body
            if isinstance(body, Approve) and tx.sender in self._council:
                self._approve_change(body.proposal_id, tx.sender, block.header)
                continue
            if isinstance(body, Propose) and tx.sender in self._council:
                body = proposed_record(body)
                if isinstance(body, UpdateValidators | UpdateCouncil):
                    # A set or council change applies at its k-th approval, not at its
                    # proposal.
                    self._proposed_changes[tx.hash()] = (body, set())
                    self._approve_change(tx.hash(), tx.sender, block.header)
                    continue
            if isinstance(body, RegisterParticipant):
                self._senders.add(body.public_key)
            elif isinstance(body, RegisterMeter | ReplaceBridgeKey):
                self._senders.add(body.bridge_key)
            elif isinstance(body, UpdateValidators):
                # Signed by the governance key itself (k = 1): it applied in this block.
                self._schedule_change(body, block.height, block.header.round)
        self._head = FollowedHead(block.height, block.hash(), block.header.timestamp_ms)
        self._keep(block.height, committed.encode() if raw is None else raw)
        for feed in list(self._feeds):
            if feed.queue.full():
                self._feeds.discard(feed)
                feed.overflowed.set()
            else:
                feed.queue.put_nowait(committed)
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    def _keep(self, height: int, raw: bytes) -> None:
        """Hold ``raw`` for readers; drop the oldest past either bound (the newest stays)."""
        self._blocks[height] = raw
        self._kept_bytes += len(raw)
        while len(self._blocks) > 1 and (
            len(self._blocks) > self._keep_blocks or self._kept_bytes > self._keep_bytes
        ):
            _, dropped = self._blocks.popitem(last=False)
            self._kept_bytes -= len(dropped)

    def _start_sync(self) -> None:
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        """Fetch certified ranges from the head on while a validator is known to be ahead
        (and once at start), backing off while nobody serves."""
        failures = 0
        first = True
        while first or self._best_peer_height > self._head.height:
            first = False
            start = self._head.height + 1
            try:
                raws = await self.network.fetch_blocks(start, MAX_BLOCKS_PER_REQUEST)
            except (GridchainError, OSError) as exc:
                self._log.info("block fetch failed", height=start, reason=str(exc))
                raws = []
            accepted = 0
            for raw in raws:
                try:
                    committed = decode_committed(raw)
                    if committed.block.height <= self._head.height:
                        accepted += 1  # pushed to us (NewBlock) while the range was on its way
                        continue
                    self._accept(committed, raw)
                except GridchainError as exc:
                    self._log.warning("fetched block refused", height=start, reason=exc.message)
                    break
                accepted += 1
            if accepted:
                failures = 0
                continue
            failures += 1
            await asyncio.sleep(min(2.0, 0.05 * failures))
