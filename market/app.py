"""The application the node calls: check a transaction, execute a block, give the state root.

This is the narrow interface between consensus and the ledger (in the spirit of ABCI): the node
hands over transactions and a block context (height, time and proposer from the header) and
gets back the writes and the resulting state root.  Everything here is deterministic: integer
arithmetic, no clock, no iteration order that depends on hashing.

A block is valid only if every transaction in it applies; the proposer builds blocks from a
mempool that already applied them in order, so an honest proposal never fails, and a failing
one is rejected as a whole (nothing of it is written).  Time enters only through the block
header: the markets close books at gate closure (:meth:`Application.begin_block`), and an order
that reaches a block after its gate closure is recorded as rejected rather than failing the
block, because the proposer cannot know at admission how late the block will be.  Should a
transaction still not apply when the proposer builds a block (the mempool's simulation ran at
another time), :meth:`Application.build_block` leaves it out instead of failing the proposal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from gridchain.genesis.schema import Genesis
from gridchain.market.accounts import (
    Account,
    ParticipantRecord,
    get_account,
    get_participant,
    get_supply,
    put_account,
    put_participant,
    put_supply,
)
from gridchain.market.base_load import record_metered_load_due
from gridchain.market.cd_planner import plan
from gridchain.market.cd_requests import IntervalClock, admit_request
from gridchain.market.cd_schedule import Decision, apply_decision, due_interval
from gridchain.market.cd_settlement import settle_cd_due
from gridchain.market.chain_params import apply_param_change, params_at
from gridchain.market.council import apply_council_update, council_in_office
from gridchain.market.device_links import apply_link
from gridchain.market.errors import (
    AlreadyRegisteredError,
    ApplicationError,
    InsufficientBalanceError,
    InvalidAmountError,
    NonceGapError,
    NotAParticipantError,
    NotGovernanceError,
    NotGovernanceKindError,
    NotRegisteredError,
    ReplayedNonceError,
    SealedDisabledError,
    SealedKeySetError,
    SealedUnavailableError,
    SupplyOverflowError,
    UnknownRecipientError,
)
from gridchain.market.gateways import apply_gateway_update, gateways_in_force
from gridchain.market.governance import Council, approve, propose
from gridchain.market.governance import expire_due as expire_proposals
from gridchain.market.governance_actions import remove_participant, replace_bridge_key
from gridchain.market.keys import require_registrable_key
from gridchain.market.meters import apply_readings, register_meter
from gridchain.market.orders import Exchange, MarketEvent, OrderContext
from gridchain.market.pruning import prune_due
from gridchain.market.sealed_outcomes import SealedOutcome, SealedStatus, put_outcome
from gridchain.market.slot_settlement import settle_due
from gridchain.market.state import MerkleState, Overlay, StateReader
from gridchain.market.tx_effects import TxEffect
from gridchain.market.validators import (
    ValidatorRoleConflictError,
    advance_validator_change,
    apply_validator_update,
)
from gridchain.protocol.address import address_of, format_address, parse_address
from gridchain.protocol.block import ScheduleEntry
from gridchain.protocol.crypto import verify
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.governance import (
    GOVERNANCE_KINDS,
    LinkDevice,
    RemoveParticipant,
    ReplaceBridgeKey,
    SetParameter,
    SetTariffs,
    UpdateCouncil,
    UpdateGateways,
)
from gridchain.protocol.reading_signatures import ReadingSignatureCache
from gridchain.protocol.sealed import Opener, SealContext, open_tx, sealed_to
from gridchain.protocol.tx import (
    AmendOrder,
    Approve,
    Burn,
    CancelOrder,
    CDRequest,
    MeterReadings,
    Mint,
    PlaceOrder,
    Propose,
    RegisterMeter,
    RegisterParticipant,
    SealedTx,
    Transaction,
    Transfer,
    TxBody,
    UpdateValidators,
)
from gridchain.protocol.tx_signatures import TxSignatureCache, TxVerifier

MAX_SUPPLY_MC = 2**63 - 1


@dataclass(frozen=True, slots=True)
class BlockContext:
    height: int
    timestamp_ms: int
    proposer: bytes
    #: the header's round (PoB; 0 for the other engines): a pending PoB set change comes into
    #: force after a run of blocks of consecutive rounds (ADR 0049)
    round: int = 0


@dataclass(frozen=True, slots=True)
class Execution:
    """The outcome of executing a block's transactions on the committed state."""

    writes: dict[bytes, bytes | None]
    state_root: bytes
    #: What happened in the markets, in execution order (for /v1/events; not hashed).
    events: tuple[MarketEvent, ...] = field(default=())
    #: The interval this block decided, if any (for /v1/schedule events).
    decision: Decision | None = None
    #: Entries the block pruned from the live state, with their last values (the node's
    #: archive index; not committed by the state root, ADR 0027).
    archived: dict[bytes, bytes] = field(default_factory=dict)
    #: Whether the block changed the state before its transactions (expiry, settlement,
    #: pruning, a schedule): the mempool's pending state cannot have foreseen that.
    wrote_before_txs: bool = False


@dataclass(frozen=True, slots=True)
class BlockBuild:
    """A proposal's transactions after leaving out those that do not apply at its time."""

    txs: tuple[Transaction, ...]
    left_out: tuple[tuple[Transaction, ApplicationError], ...]
    execution: Execution
    #: The schedule section the proposer computed and the benefit it gives.
    schedule: tuple[ScheduleEntry, ...] = ()
    benefit: int = 0


class Application:
    """``opener`` opens this validator's wrap of sealed transactions (protocol/sealed.py); it
    is passed in by node/ (or the simulator) so this module holds no key and reads no file.
    Without one, a sealed transaction is refused with SealedUnavailableError."""

    def __init__(
        self, genesis: Genesis, opener: Opener | None = None, verifier: TxVerifier = verify
    ) -> None:
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        #: every transaction signature this validator verified, shared by admission (API,
        #: gateway link, gossip) and block validation; ``verifier`` is protocol.crypto.verify
        #: (a test passes a counting wrapper)
        self.signatures = TxSignatureCache(self.chain_id, verifier)
        #: every meter-reading signature this validator verified, asked by market/meters.py
        #: wherever a MeterReadings transaction applies (admission, rechecks, build,
        #: validation): each reading is checked once per validator (ADR 0056)
        self.readings = ReadingSignatureCache(self.chain_id, verifier)
        keys = genesis.encryption_keys()
        self.seal = SealContext(self.chain_id, keys) if keys else None
        self.opener = opener
        self.governance_key = bytes.fromhex(genesis.governance_public_key)
        self.governance_address = address_of(self.governance_key)
        #: Genesis's answer to whether the governance key signs governance records itself
        #: (a genesis without ``council``); on chain the council in office decides, since it
        #: may replace itself (:meth:`council_in`, ADR 0043).
        self.governance_signs = genesis.governance_signs_directly
        self.council = Council.of(genesis.council_keys(), genesis.threshold)
        self.exchange = Exchange(genesis.params)
        self._changed_exchange: Exchange | None = None
        self.interval_clock = IntervalClock.of(genesis)

    def schedule_due(self, state: StateReader, timestamp_ms: int) -> bool:
        """Whether a block at ``timestamp_ms`` would decide an interval with live requests.

        The node proposes such a block even with an empty mempool: vehicles need setpoints
        before their interval starts, whether or not anybody trades.
        """
        due = due_interval(self.genesis, state, timestamp_ms)
        return due is not None and bool(due.live)

    def council_in(self, state: StateReader) -> Council:
        """The council in office on ``state`` (genesis's until it replaced itself)."""
        return council_in_office(state, self.council)

    def _governance_signs(self, council: Council, sender_key: bytes) -> bool:
        """Whether ``sender_key`` signs governance records itself: the governance key, while
        it is the whole council (a genesis without ``council`` that never replaced it)."""
        return sender_key == self.governance_key and council.keys == {self.governance_key}

    def exchange_at(self, state: StateReader, height: int) -> Exchange:
        """The order life cycle under the parameters of block ``height`` (gate closure may
        change from a height, market/chain_params.py); the last one built is kept."""
        params = params_at(state, self.genesis, height)
        if params is self.genesis.params:
            return self.exchange
        if self._changed_exchange is None or self._changed_exchange.params != params:
            self._changed_exchange = Exchange(params)
        return self._changed_exchange

    # --- genesis ------------------------------------------------------------------------

    def genesis_state(self) -> MerkleState:
        """The state before block 1: participants registered, balances and supply set."""
        view = Overlay(MerkleState())
        for p in self.genesis.participants:
            record = ParticipantRecord(p.public_key_bytes, p.name, 0)
            put_participant(view, p.address_bytes, record)
            put_account(view, p.address_bytes, Account())
        put_account(view, self.governance_address, Account())
        total = 0
        for b in self.genesis.balances:
            address = parse_address(b.address)
            put_account(view, address, Account(balance_mc=b.amount_mc))
            total += b.amount_mc
        put_supply(view, total)
        for m in self.genesis.meters:
            register_meter(
                view,
                RegisterMeter(
                    meter_id=m.meter_id,
                    owner=parse_address(m.owner),
                    meter_type=m.meter_type_code,
                    bridge_key=bytes.fromhex(m.bridge_public_key),
                    profile=m.profile,
                ),
                0,
            )
        state = MerkleState()
        state.apply(view.writes)
        return state

    # --- transactions -------------------------------------------------------------------

    def check_tx(
        self,
        tx: Transaction,
        state: StateReader,
        ctx: BlockContext,
        overlay: Callable[[StateReader], Overlay] = Overlay,
    ) -> Overlay:
        """Verify the signature and try the transaction; return its writes on an overlay.

        The caller decides whether to keep them (the mempool does, to check the next
        transaction against the pending state) or drop them; ``overlay`` makes the view (the
        mempool's records what the transaction read, market/tx_effects.py).
        """
        self.signatures.require(tx)
        view = overlay(state)
        self.apply_tx(tx, view, ctx, admission=True)
        return view

    def apply_tx(
        self, tx: Transaction, view: Overlay, ctx: BlockContext, *, admission: bool = False
    ) -> list[MarketEvent]:
        """Apply one transaction whose signature was verified; raise without writing on error.

        Writes go to ``view`` only after every check passed, so a refusal leaves it unchanged.
        ``admission`` is True when the mempool admits a new transaction: an order whose gate
        has closed is then refused outright instead of being recorded as rejected.  Returns
        the market events of the transaction.
        """
        sender = address_of(tx.sender)
        council = self.council_in(view)
        is_governance = self._governance_signs(council, tx.sender)
        # A bridge key need not be a participant: it signs readings for its meters only, and
        # apply_readings refuses a reading of any meter not registered to that very key.  A
        # council member need not be one either: it proposes and approves only.
        is_readings = isinstance(tx.body, MeterReadings)
        is_council = isinstance(tx.body, Propose | Approve) and tx.sender in council.keys
        exempt = is_governance or is_readings or is_council
        if not exempt and get_participant(view, sender) is None:
            raise NotRegisteredError(f"{format_address(sender)} is not a registered participant")
        account = get_account(view, sender)
        if tx.nonce < account.nonce:
            raise ReplayedNonceError(f"nonce {tx.nonce} already used (next is {account.nonce})")
        if tx.nonce > account.nonce:
            raise NonceGapError(f"nonce {tx.nonce} skips ahead (next is {account.nonce})")
        checked = _CheckedSender(sender, council, is_governance, account)
        if isinstance(tx.body, SealedTx):
            return self._sealed(view, checked, tx, ctx, admission=admission)
        return self._apply_body(
            view, tx.sender, tx.hash(), tx.body, ctx, admission=admission, checked=checked
        )

    def _apply_body(
        self,
        view: Overlay,
        sender_key: bytes,
        tx_hash: bytes,
        body: TxBody,
        ctx: BlockContext,
        *,
        admission: bool,
        checked: _CheckedSender,
    ) -> list[MarketEvent]:
        """Apply one body whose envelope (signature, sender, nonce) was checked; ``checked``
        is what that check read, still current (nothing was written since)."""
        sender, council, is_governance, account = checked
        if isinstance(body, Transfer):
            self._transfer(view, sender, account, body)
        elif isinstance(body, GOVERNANCE_KINDS):
            self._require_governance(is_governance, council, type(body).__name__)
            self._apply_governance(view, body, ctx)
            put_account(view, sender, _bump(get_account(view, sender)))
        elif isinstance(body, Propose | Approve):
            self._council(view, sender_key, tx_hash, body, ctx)
            put_account(view, sender, _bump(get_account(view, sender)))
        elif isinstance(body, MeterReadings):
            apply_readings(
                view,
                body,
                sender_key=sender_key,
                chain_id=self.chain_id,
                height=ctx.height,
                block_ms=ctx.timestamp_ms,
                signatures=self.readings,
            )
            put_account(view, sender, _bump(get_account(view, sender)))
        elif isinstance(body, CDRequest):
            admit_request(
                view,
                params_at(view, self.genesis, ctx.height),
                self.interval_clock,
                owner=sender,
                request_id=tx_hash,
                body=body,
                is_governance=is_governance,
                height=ctx.height,
                block_ms=ctx.timestamp_ms,
            )
            put_account(view, sender, _bump(get_account(view, sender)))
        elif isinstance(body, PlaceOrder | CancelOrder | AmendOrder):
            if is_governance:
                raise NotAParticipantError("the governance key does not trade")
            return self._order(view, sender, tx_hash, body, ctx, admission=admission)
        else:  # pragma: no cover - the decoder admits only the kinds above
            raise InvalidAmountError(f"unsupported transaction kind {type(body).__name__}")
        return []

    def _sealed(
        self,
        view: Overlay,
        checked: _CheckedSender,
        tx: Transaction,
        ctx: BlockContext,
        *,
        admission: bool,
    ) -> list[MarketEvent]:
        """Open a sealed transaction and apply its body, or record the refusal (ADR 0026).

        What can be checked without a private key (the chain seals at all, the key set and
        the number of wraps) refuses the transaction like any other.  Past that, every
        validator reaches the same verdict (protocol/sealed.py), and a body that does not
        open or does not apply is a *recorded* refusal: the nonce is used and the outcome is
        kept for the sender, because the public (and a gateway following the chain) sees only
        the envelope and must be able to count nonces from envelopes alone.
        """
        body = tx.body
        if not isinstance(body, SealedTx):  # pragma: no cover - the caller dispatched on it
            raise TypeError(tx.kind)
        if self.seal is None:
            raise SealedDisabledError("this chain registers no encryption keys")
        if not sealed_to(body, self.seal):
            raise SealedKeySetError("sealed to other keys than this chain's validators'")
        if self.opener is None:
            raise SealedUnavailableError("this node holds no encryption key")
        sender = checked.address
        trial = Overlay(view)  # nothing written yet: what ``checked`` read still holds
        try:
            inner = open_tx(tx, self.seal, self.opener)
            events = self._apply_body(
                trial, tx.sender, tx.hash(), inner, ctx, admission=admission, checked=checked
            )
        except GridchainError as exc:
            put_account(view, sender, _bump(get_account(view, sender)))
            outcome = SealedOutcome(tx.hash(), int(SealedStatus.REFUSED), exc.code[:64], ctx.height)
            put_outcome(view, sender, outcome)
            return []
        trial.merge_into_parent()
        put_outcome(
            view, sender, SealedOutcome(tx.hash(), int(SealedStatus.APPLIED), "", ctx.height)
        )
        return events

    def _order(
        self,
        view: Overlay,
        sender: bytes,
        tx_hash: bytes,
        body: PlaceOrder | CancelOrder | AmendOrder,
        ctx: BlockContext,
        *,
        admission: bool,
    ) -> list[MarketEvent]:
        # Matching writes as it goes; a nested overlay keeps a refusal from leaving anything.
        inner = Overlay(view)
        octx = OrderContext(ctx.height, ctx.timestamp_ms, admission)
        exchange = self.exchange_at(view, ctx.height)
        if isinstance(body, PlaceOrder):
            events = exchange.place(inner, sender, tx_hash, body, octx)
        elif isinstance(body, CancelOrder):
            events = exchange.cancel(inner, sender, body, octx)
        else:
            events = exchange.amend(inner, sender, body, octx)
        put_account(inner, sender, _bump(get_account(inner, sender)))
        inner.merge_into_parent()
        return events

    def _require_governance(self, is_governance: bool, council: Council, kind: str) -> None:
        if is_governance:
            return
        if council.keys == {self.governance_key}:
            raise NotGovernanceError(f"{kind} must be signed by the governance key")
        raise NotGovernanceError(
            f"{kind} needs {council.threshold} council approvals: propose it "
            "(gridchain gov propose)"
        )

    def _apply_governance(self, view: Overlay, record: Record, ctx: BlockContext) -> None:
        """Apply one governance record with governance authority: the one code path of a
        record the governance key signed and of a council proposal at its k-th approval."""
        if isinstance(record, RegisterParticipant):
            self._register(view, record, ctx)
        elif isinstance(record, Mint):
            self._mint(view, record)
        elif isinstance(record, Burn):
            self._burn(view, record)
        elif isinstance(record, RegisterMeter):
            register_meter(view, record, ctx.height)
        elif isinstance(record, RemoveParticipant):
            remove_participant(view, record)
        elif isinstance(record, ReplaceBridgeKey):
            replace_bridge_key(view, record)
        elif isinstance(record, UpdateValidators):
            if set(record.add) & set(gateways_in_force(view, self.genesis)):
                raise ValidatorRoleConflictError("a gateway cannot be a validator")
            apply_validator_update(view, self.genesis, record, ctx.height, ctx.round)
        elif isinstance(record, SetParameter | SetTariffs):
            apply_param_change(view, self.genesis, record, ctx.height)
        elif isinstance(record, UpdateCouncil):
            apply_council_update(view, record, self.governance_key, ctx.height)
        elif isinstance(record, UpdateGateways):
            apply_gateway_update(view, self.genesis, record, self.council_in(view).keys)
        elif isinstance(record, LinkDevice):
            apply_link(view, record, ctx.height)
        else:
            raise NotGovernanceKindError(f"{type(record).__name__} is not a governance record")

    def _council(
        self,
        view: Overlay,
        member: bytes,
        tx_hash: bytes,
        body: Propose | Approve,
        ctx: BlockContext,
    ) -> None:
        """A council member's proposal or approval (market/governance.py)."""

        def apply_record(trial: Overlay, record: Record) -> None:
            self._apply_governance(trial, record, ctx)

        if isinstance(body, Propose):
            propose(
                view,
                self.council_in(view),
                proposer=member,
                proposal_id=tx_hash,
                body=body,
                height=ctx.height,
                apply_record=apply_record,
            )
        else:
            approve(
                view,
                self.council_in(view),
                approver=member,
                body=body,
                height=ctx.height,
                apply_record=apply_record,
            )

    def _transfer(self, view: Overlay, sender: bytes, account: Account, body: Transfer) -> None:
        if body.amount_mc == 0:
            raise InvalidAmountError("a transfer moves a positive amount")
        if body.to != self.governance_address and get_participant(view, body.to) is None:
            raise UnknownRecipientError(
                f"{format_address(body.to)} is not a registered participant"
            )
        spendable = account.balance_mc - account.locked_mc
        if body.amount_mc > spendable:
            raise InsufficientBalanceError(
                f"transfer of {body.amount_mc} mc exceeds the spendable balance of {spendable} mc"
            )
        debited = Account(account.balance_mc - body.amount_mc, account.nonce + 1, account.locked_mc)
        put_account(view, sender, debited)
        recipient = get_account(view, body.to)  # read after the debit: a self-transfer nets out
        put_account(
            view,
            body.to,
            Account(recipient.balance_mc + body.amount_mc, recipient.nonce, recipient.locked_mc),
        )

    @staticmethod
    def _register(view: Overlay, body: RegisterParticipant, ctx: BlockContext) -> None:
        require_registrable_key(body.public_key, what="RegisterParticipant.public_key")
        address = address_of(body.public_key)
        if get_participant(view, address) is not None:
            raise AlreadyRegisteredError(f"{format_address(address)} is already registered")
        put_participant(view, address, ParticipantRecord(body.public_key, body.name, ctx.height))

    @staticmethod
    def _mint(view: Overlay, body: Mint) -> None:
        if body.amount_mc == 0:
            raise InvalidAmountError("mint a positive amount")
        supply = get_supply(view)
        if supply + body.amount_mc > MAX_SUPPLY_MC:
            raise SupplyOverflowError("mint would take the supply past 2**63 - 1 mc")
        if get_participant(view, body.to) is None:
            raise UnknownRecipientError(
                f"{format_address(body.to)} is not a registered participant"
            )
        acct = get_account(view, body.to)
        put_account(
            view, body.to, Account(acct.balance_mc + body.amount_mc, acct.nonce, acct.locked_mc)
        )
        put_supply(view, supply + body.amount_mc)

    @staticmethod
    def _burn(view: Overlay, body: Burn) -> None:
        if body.amount_mc == 0:
            raise InvalidAmountError("burn a positive amount")
        acct = get_account(view, body.account)
        if body.amount_mc > acct.balance_mc - acct.locked_mc:
            raise InsufficientBalanceError("burn exceeds the account's spendable balance")
        put_account(
            view,
            body.account,
            Account(acct.balance_mc - body.amount_mc, acct.nonce, acct.locked_mc),
        )
        put_supply(view, get_supply(view) - body.amount_mc)

    # --- blocks -------------------------------------------------------------------------

    def begin_block(self, view: Overlay, ctx: BlockContext) -> list[MarketEvent]:
        """What a block does before its transactions: expire orders whose time has come, settle
        every slot whose grace period for readings is over (market/settlement.py) and every
        decided C&D interval whose grace period is over (market/cd_settlement.py), measure the
        community's load of every such interval for the base-load forecast (market/base_load.py),
        close the council proposals that expired (market/governance.py), then move
        what is closed for good out of the live state (market/pruning.py); on PoB, count the
        block into the run that brings a pending validator-set change into force (ADR 0049)."""
        events = self.exchange.expire_due(view, ctx.timestamp_ms)
        expire_proposals(view, ctx.height)
        settle_due(self.genesis, view, ctx.height, ctx.timestamp_ms)
        settle_cd_due(self.genesis, view, ctx.height, ctx.timestamp_ms)
        record_metered_load_due(self.genesis, view, ctx.timestamp_ms)
        prune_due(self.genesis, view, ctx.timestamp_ms)
        advance_validator_change(view, self.genesis, ctx.height, ctx.round)
        return events

    def execute_block(
        self,
        state: MerkleState,
        txs: Sequence[Transaction],
        ctx: BlockContext,
        *,
        schedule: Sequence[ScheduleEntry] = (),
        benefit: int = 0,
        parent_writes: Mapping[bytes, bytes | None] | None = None,
        known: Callable[[Transaction], TxEffect | None] | None = None,
    ) -> Execution:
        """Apply a block (signatures already verified); raise if anything in it fails.

        The schedule section is checked and applied after :meth:`begin_block` and before the
        transactions, and ``benefit`` (the header's claim) must equal the recomputed one.
        ``parent_writes`` are the writes of uncommitted ancestors (pob builds on blocks that
        are not final yet), applied over ``state`` first; the execution's ``writes`` are this
        block's own and its ``state_root`` is that of the whole stack.  ``known`` is as for
        :meth:`build_block`: a follower's pool applied the transaction already, and where what
        it read still holds its writes are taken (market/tx_effects.py, ADR 0046).
        """
        parent = _parent_view(state, parent_writes)
        view = Overlay(parent)
        events = self.begin_block(view, ctx)
        decision, _ = apply_decision(
            self.genesis,
            view,
            height=ctx.height,
            timestamp_ms=ctx.timestamp_ms,
            entries=schedule,
            claimed_benefit=benefit,
        )
        wrote_before_txs = bool(view.writes)
        self.readings.settle(txs)  # a large unseen block's readings, in the verify pool
        try:
            for tx in txs:
                effect = None if known is None else known(tx)
                if effect is not None and effect.holds_on(view):
                    effect.apply_to(view)  # what applying it would write (no events: a transfer)
                    continue
                events.extend(self.apply_tx(tx, view, ctx))
        finally:
            self.readings.release()
        return Execution(
            writes=dict(view.writes),
            state_root=_root(state, parent_writes, view.writes),
            events=tuple(events),
            decision=decision,
            archived=dict(view.archived),
            wrote_before_txs=wrote_before_txs,
        )

    def build_block(
        self,
        state: MerkleState,
        txs: Sequence[Transaction],
        ctx: BlockContext,
        *,
        parent_writes: Mapping[bytes, bytes | None] | None = None,
        known: Callable[[Transaction], TxEffect | None] | None = None,
    ) -> BlockBuild:
        """Execute a proposal's candidates in order, leaving out each one that does not apply.

        The result executes exactly like :meth:`execute_block` on the kept transactions: a
        left-out transaction wrote nothing (it ran on its own nested overlay).  ``known``
        gives a candidate's remembered effect (the mempool's, market/tx_effects.py): when the
        values it read still hold, its writes are taken instead of applying it again.
        """
        view = Overlay(_parent_view(state, parent_writes))
        events = self.begin_block(view, ctx)
        due = due_interval(self.genesis, view, ctx.timestamp_ms, ctx.height)
        schedule = () if due is None else plan(self.genesis, due, view)
        decision, benefit = apply_decision(
            self.genesis,
            view,
            height=ctx.height,
            timestamp_ms=ctx.timestamp_ms,
            entries=schedule,
            claimed_benefit=None,
        )
        wrote_before_txs = bool(view.writes)
        kept: list[Transaction] = []
        left_out: list[tuple[Transaction, ApplicationError]] = []
        self.readings.settle(txs)  # candidates not admitted here (a bench's), in the pool
        try:
            for tx in txs:
                effect = None if known is None else known(tx)
                if effect is not None and effect.holds_on(view):
                    effect.apply_to(view)  # what applying it would write (no events: a transfer)
                    kept.append(tx)
                    continue
                trial = Overlay(view)
                try:
                    tx_events = self.apply_tx(tx, trial, ctx)
                except ApplicationError as exc:
                    left_out.append((tx, exc))
                    continue
                trial.merge_into_parent()
                kept.append(tx)
                events.extend(tx_events)
        finally:
            self.readings.release()
        execution = Execution(
            writes=dict(view.writes),
            state_root=_root(state, parent_writes, view.writes),
            events=tuple(events),
            decision=decision,
            archived=dict(view.archived),
            wrote_before_txs=wrote_before_txs,
        )
        return BlockBuild(tuple(kept), tuple(left_out), execution, schedule, benefit)


def _parent_view(
    state: MerkleState, parent_writes: Mapping[bytes, bytes | None] | None
) -> StateReader:
    """The committed state, or the committed state under the uncommitted ancestors' writes."""
    if not parent_writes:
        return state
    parent = Overlay(state)
    for key, value in parent_writes.items():
        if value is None:
            parent.delete(key)
        else:
            parent.put(key, value)
    return parent


def _root(
    state: MerkleState,
    parent_writes: Mapping[bytes, bytes | None] | None,
    writes: Mapping[bytes, bytes | None],
) -> bytes:
    if not parent_writes:
        return state.root_with(writes)
    return state.root_with({**parent_writes, **writes})


class _CheckedSender(NamedTuple):
    """What ``apply_tx`` read of the sender to check the envelope, handed to the body's
    handler instead of read again (a plain transfer's admission is about 25 us, and these
    reads were a tenth of it: ADR 0058)."""

    address: bytes
    council: Council
    is_governance: bool
    account: Account


def _bump(account: Account) -> Account:
    return Account(account.balance_mc, account.nonce + 1, account.locked_mc)
