"""The ledger rules of the application: each refusal is a typed error and changes nothing.

Why: every validator runs these rules on every block, so they must be exact: money moves only
between registered participants, never below zero and never by a replayed or skipped nonce;
the chain is permissioned, so only the governance key admits participants or changes the
supply; and a block is all or nothing.  The properties at the end check that no sequence of
transactions, valid or not, creates or destroys money or makes two runs disagree.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridchain.genesis.builder import GenesisBundle, NamedKey
from gridchain.genesis.schema import parse_genesis
from gridchain.market.accounts import (
    Account,
    get_account,
    get_participant,
    get_supply,
    put_account,
)
from gridchain.market.app import MAX_SUPPLY_MC, Application
from gridchain.market.errors import (
    AlreadyRegisteredError,
    ApplicationError,
    InsufficientBalanceError,
    InvalidAmountError,
    NonceGapError,
    NotGovernanceError,
    NotRegisteredError,
    ReplayedNonceError,
    SupplyOverflowError,
    UnknownRecipientError,
)
from gridchain.market.state import MerkleState, Overlay
from gridchain.protocol.address import address_of
from gridchain.protocol.errors import BadKeyError, SignatureError
from gridchain.protocol.tx import Burn, Mint, RegisterParticipant, Transaction, Transfer
from tests.helpers import (
    addr,
    all_accounts,
    block_context,
    burn,
    det_key,
    mint,
    register,
    signed,
    small_bundle,
    transfer,
)

CTX = block_context(1)
START_MC = 1_000_000
STRANGER = det_key("not a participant")


def _peers(bundle: GenesisBundle) -> tuple[NamedKey, NamedKey, NamedKey]:
    a, b, c = bundle.participants
    return a, b, c


def _balance(view: MerkleState | Overlay, key: NamedKey | bytes) -> int:
    address = key if isinstance(key, bytes) else addr(key)
    return get_account(view, address).balance_mc


def _nonce(view: MerkleState | Overlay, key: NamedKey) -> int:
    return get_account(view, addr(key)).nonce


def _money(view: MerkleState | Overlay) -> int:
    return sum(a.balance_mc for a in all_accounts(view).values())


# --- genesis state ---------------------------------------------------------------------------


def test_genesis_state_registers_participants_and_sets_the_supply(
    bundle: GenesisBundle, state: MerkleState
) -> None:
    for p in bundle.participants:
        record = get_participant(state, addr(p))
        assert record is not None
        assert (record.public_key, record.name, record.registered_height) == (
            p.key.public_key,
            p.name,
            0,
        )
        assert get_account(state, addr(p)) == Account(START_MC, 0, 0)
    assert get_account(state, addr(bundle.governance)) == Account()
    assert get_participant(state, addr(bundle.governance)) is None
    assert get_supply(state) == 3 * START_MC == _money(state)


# --- transfers -------------------------------------------------------------------------------


def test_transfer_moves_money_and_bumps_the_nonce(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, c = _peers(bundle)
    view = app.check_tx(transfer(a, chain_id, 0, b, 250_000, memo="evening PV"), state, CTX)
    assert (_balance(view, a), _balance(view, b), _balance(view, c)) == (
        750_000,
        1_250_000,
        START_MC,
    )
    assert (_nonce(view, a), _nonce(view, b)) == (1, 0)
    assert get_supply(view) == 3 * START_MC
    assert _balance(state, a) == START_MC  # check_tx writes to its overlay only


def test_the_whole_spendable_balance_can_be_sent(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    view = app.check_tx(transfer(a, chain_id, 0, b, START_MC), state, CTX)
    assert (_balance(view, a), _balance(view, b)) == (0, 2 * START_MC)


def test_a_self_transfer_only_bumps_the_nonce(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, _, _ = _peers(bundle)
    view = app.check_tx(transfer(a, chain_id, 0, a, 400), state, CTX)
    assert get_account(view, addr(a)) == Account(START_MC, 1, 0)


def test_a_participant_can_pay_the_governance_account(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, _, _ = _peers(bundle)
    view = app.check_tx(transfer(a, chain_id, 0, bundle.governance, 10), state, CTX)
    assert _balance(view, bundle.governance) == 10


def test_a_zero_transfer_is_refused(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    with pytest.raises(InvalidAmountError):
        app.check_tx(transfer(a, chain_id, 0, b, 0), state, CTX)


def test_a_transfer_beyond_the_balance_is_refused(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    with pytest.raises(InsufficientBalanceError):
        app.check_tx(transfer(a, chain_id, 0, b, START_MC + 1), state, CTX)


def test_locked_escrow_is_not_spendable(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    view = Overlay(state)
    put_account(view, addr(a), Account(balance_mc=1_000, nonce=0, locked_mc=600))
    with pytest.raises(InsufficientBalanceError):
        app.apply_tx(transfer(a, chain_id, 0, b, 401), view, CTX)
    app.apply_tx(transfer(a, chain_id, 0, b, 400), view, CTX)
    assert get_account(view, addr(a)) == Account(600, 1, 600)


def test_a_transfer_to_an_unregistered_address_is_refused(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, _, _ = _peers(bundle)
    with pytest.raises(UnknownRecipientError):
        app.check_tx(transfer(a, chain_id, 0, STRANGER, 5), state, CTX)


def test_an_unregistered_sender_is_refused(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, _, _ = _peers(bundle)
    with pytest.raises(NotRegisteredError):
        app.check_tx(transfer(STRANGER, chain_id, 0, a, 5), state, CTX)


def test_a_replayed_nonce_and_a_nonce_gap_are_told_apart(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    first = transfer(a, chain_id, 0, b, 10)
    view = app.check_tx(first, state, CTX)
    with pytest.raises(ReplayedNonceError):
        app.apply_tx(first, view, CTX)  # the very same transaction again
    with pytest.raises(ReplayedNonceError):
        app.apply_tx(transfer(a, chain_id, 0, b, 11), view, CTX)
    with pytest.raises(NonceGapError):
        app.apply_tx(transfer(a, chain_id, 2, b, 10), view, CTX)
    app.apply_tx(transfer(a, chain_id, 1, b, 10), view, CTX)
    assert _nonce(view, a) == 2


def test_a_bad_signature_or_another_chain_is_refused(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    good = transfer(a, chain_id, 0, b, 10)
    forged = Transaction(good.sender, good.nonce, Transfer(addr(b), 10_000), good.signature)
    with pytest.raises(SignatureError):
        app.check_tx(forged, state, CTX)
    other_chain = small_bundle(chain_name="another-chain").genesis.chain_id
    with pytest.raises(SignatureError):
        app.check_tx(transfer(a, other_chain, 0, b, 10), state, CTX)


# --- governance ------------------------------------------------------------------------------


def test_only_governance_registers_participants(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, _, _ = _peers(bundle)
    newcomer = det_key("newcomer")
    with pytest.raises(NotGovernanceError):
        app.check_tx(register(a, chain_id, 0, newcomer, "newcomer"), state, CTX)

    ctx = block_context(7)
    view = app.check_tx(register(bundle.governance, chain_id, 0, newcomer, "newcomer"), state, ctx)

    record = get_participant(view, addr(newcomer))
    assert record is not None
    assert (record.public_key, record.name, record.registered_height) == (
        newcomer.public_key,
        "newcomer",
        7,
    )
    assert _nonce(view, bundle.governance) == 1


def test_registering_twice_is_refused(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    gov = bundle.governance
    newcomer = det_key("newcomer")
    view = app.check_tx(register(gov, chain_id, 0, newcomer, "newcomer"), state, CTX)
    with pytest.raises(AlreadyRegisteredError):
        app.apply_tx(register(gov, chain_id, 1, newcomer, "again"), view, CTX)
    with pytest.raises(AlreadyRegisteredError):
        app.apply_tx(register(gov, chain_id, 1, bundle.participants[0].key, "dup"), view, CTX)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x01" + bytes(31), "small_order_key"),
        (bytes(32), "small_order_key"),
        (bytes([0xED]) + b"\xff" * 30 + b"\x7f", "non_canonical_key"),  # y = p
        (bytes([2]) + bytes(31), "key_not_on_curve"),
    ],
)
def test_registering_an_unsafe_key_is_refused(
    app: Application, bundle: GenesisBundle, state: MerkleState, raw: bytes, code: str
) -> None:
    """Failed before ADR 0021: the identity key was registered, and OpenSSL then accepts a
    forged (R = identity, S = 0) signature "by" it on any transaction."""
    tx = signed(bundle.governance, bundle.genesis.chain_id, 0, RegisterParticipant(raw, "forger"))
    view = Overlay(state)
    with pytest.raises(BadKeyError) as caught:
        app.apply_tx(tx, view, CTX)
    assert isinstance(caught.value, ApplicationError)
    assert caught.value.code == code
    assert "RegisterParticipant.public_key" in caught.value.message
    assert get_participant(view, address_of(raw)) is None
    assert not view.writes


def test_a_registered_newcomer_can_receive_and_send(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    newcomer = det_key("newcomer")
    view = Overlay(state)
    with pytest.raises(UnknownRecipientError):
        app.apply_tx(transfer(a, chain_id, 0, newcomer, 500), view, CTX)
    for tx in (
        register(bundle.governance, chain_id, 0, newcomer, "newcomer"),
        transfer(a, chain_id, 0, newcomer, 500),
        transfer(newcomer, chain_id, 0, b, 200),
    ):
        app.apply_tx(tx, view, CTX)
    assert (_balance(view, addr(newcomer)), _balance(view, b)) == (300, START_MC + 200)


def test_mint_and_burn_change_the_supply(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    gov = bundle.governance
    view = Overlay(state)
    app.apply_tx(mint(gov, chain_id, 0, a, 5_000), view, CTX)
    app.apply_tx(burn(gov, chain_id, 1, b, 7_000), view, CTX)
    assert (_balance(view, a), _balance(view, b)) == (START_MC + 5_000, START_MC - 7_000)
    assert get_supply(view) == 3 * START_MC - 2_000 == _money(view)
    assert _nonce(view, gov) == 2


@pytest.mark.parametrize("kind", ["mint", "burn"])
def test_only_governance_mints_and_burns(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes, kind: str
) -> None:
    a, b, _ = _peers(bundle)
    tx = mint(a, chain_id, 0, a, 5) if kind == "mint" else burn(a, chain_id, 0, b, 5)
    with pytest.raises(NotGovernanceError):
        app.check_tx(tx, state, CTX)


def test_mint_refuses_zero_unknown_recipients_and_overflow(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, _, _ = _peers(bundle)
    gov = bundle.governance
    view = Overlay(state)
    with pytest.raises(InvalidAmountError):
        app.apply_tx(mint(gov, chain_id, 0, a, 0), view, CTX)
    with pytest.raises(UnknownRecipientError):
        app.apply_tx(mint(gov, chain_id, 0, STRANGER, 1), view, CTX)
    headroom = MAX_SUPPLY_MC - get_supply(view)
    app.apply_tx(mint(gov, chain_id, 0, a, headroom), view, CTX)
    assert get_supply(view) == MAX_SUPPLY_MC == _money(view)
    with pytest.raises(SupplyOverflowError):
        app.apply_tx(mint(gov, chain_id, 1, a, 1), view, CTX)


def test_burn_refuses_zero_and_more_than_spendable(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, _, _ = _peers(bundle)
    gov = bundle.governance
    view = Overlay(state)
    put_account(view, addr(a), Account(balance_mc=1_000, nonce=0, locked_mc=300))
    with pytest.raises(InvalidAmountError):
        app.apply_tx(burn(gov, chain_id, 0, a, 0), view, CTX)
    with pytest.raises(InsufficientBalanceError):
        app.apply_tx(burn(gov, chain_id, 0, a, 701), view, CTX)
    with pytest.raises(InsufficientBalanceError):
        app.apply_tx(burn(gov, chain_id, 0, STRANGER, 1), view, CTX)


# --- refusals change nothing -----------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        "zero",
        "overspend",
        "unknown_recipient",
        "unregistered",
        "replay",
        "gap",
        "not_governance",
        "already_registered",
        "overflow",
        "burn_too_much",
    ],
)
def test_a_refused_transaction_leaves_the_overlay_unchanged(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes, case: str
) -> None:
    a, b, _ = _peers(bundle)
    gov = bundle.governance
    view = Overlay(state)
    # Earlier accepted work in the same overlay: a's nonce is 1, gov's nonce is 1.
    app.apply_tx(transfer(a, chain_id, 0, b, 100), view, CTX)
    app.apply_tx(mint(gov, chain_id, 0, b, 100), view, CTX)
    before = dict(view.writes)
    bad = {
        "zero": transfer(a, chain_id, 1, b, 0),
        "overspend": transfer(a, chain_id, 1, b, START_MC),
        "unknown_recipient": transfer(a, chain_id, 1, STRANGER, 1),
        "unregistered": transfer(STRANGER, chain_id, 0, a, 1),
        "replay": transfer(a, chain_id, 0, b, 100),
        "gap": transfer(a, chain_id, 5, b, 1),
        "not_governance": register(a, chain_id, 1, det_key("x"), "x"),
        "already_registered": register(gov, chain_id, 1, b.key, "b"),
        "overflow": mint(gov, chain_id, 1, a, MAX_SUPPLY_MC),
        "burn_too_much": burn(gov, chain_id, 1, a, START_MC),
    }[case]
    with pytest.raises(ApplicationError):
        app.apply_tx(bad, view, CTX)
    assert view.writes == before


# --- blocks ----------------------------------------------------------------------------------


def test_execute_block_returns_the_writes_and_the_root_they_give(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, c = _peers(bundle)
    txs = [transfer(a, chain_id, 0, b, 10), transfer(b, chain_id, 0, c, 20)]
    root = state.root()
    execution = app.execute_block(state, txs, CTX)
    assert state.root() == root  # nothing applied yet
    state.apply(execution.writes)
    assert state.root() == execution.state_root != root
    assert (_balance(state, a), _balance(state, b), _balance(state, c)) == (
        START_MC - 10,
        START_MC - 10,
        START_MC + 20,
    )


def test_a_block_with_a_failing_transaction_is_refused_whole(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    before = (state.root(), dict(state.items()))
    txs = [transfer(a, chain_id, 0, b, 10), transfer(a, chain_id, 1, b, START_MC)]
    with pytest.raises(InsufficientBalanceError):
        app.execute_block(state, txs, CTX)
    assert (state.root(), dict(state.items())) == before


# --- properties ------------------------------------------------------------------------------

PROP_BUNDLE = small_bundle(participants=4, seed="app-properties", balance_mc=5_000)
PROP_APP = Application(PROP_BUNDLE.genesis)
PROP_CHAIN = PROP_BUNDLE.genesis.chain_id
#: Who may send or receive: the participants, the governance key and a stranger.
ACTORS: tuple[NamedKey, ...] = (
    *PROP_BUNDLE.participants,
    PROP_BUNDLE.governance,
    NamedKey("stranger", STRANGER),
)


@dataclass(frozen=True, slots=True)
class Op:
    kind: str  # transfer, mint or burn (mint/burn are signed by ``sender``)
    sender: int
    target: int
    amount_mc: int
    nonce_shift: int  # 0 = the right nonce; -1 replays, +1 skips


GOV = len(PROP_BUNDLE.participants)
#: Mostly participants (who hold money), sometimes governance or the stranger.
SENDERS = st.sampled_from([*range(GOV)] * 3 + [GOV, GOV + 1])
AMOUNTS = st.integers(0, 3_000) | st.sampled_from([1, 5_000, 5_001, 2**63 - 1, 2**64 - 1])
NONCE_SHIFTS = st.sampled_from([0, 0, 0, 0, 0, -1, 1])
OPS = st.one_of(
    st.builds(
        Op,
        kind=st.just("transfer"),
        sender=SENDERS,
        target=st.integers(0, len(ACTORS) - 1),
        amount_mc=AMOUNTS,
        nonce_shift=NONCE_SHIFTS,
    ),
    st.builds(
        Op,
        kind=st.sampled_from(["mint", "burn"]),
        sender=st.sampled_from([GOV, GOV, GOV, 0]),  # now and then a participant tries
        target=st.integers(0, len(ACTORS) - 1),
        amount_mc=AMOUNTS,
        nonce_shift=NONCE_SHIFTS,
    ),
)


def _tx(op: Op, nonce: int) -> Transaction:
    sender = ACTORS[op.sender]
    target = addr(ACTORS[op.target])
    if op.kind == "transfer":
        return transfer(sender, PROP_CHAIN, nonce, target, op.amount_mc)
    if op.kind == "mint":
        return mint(sender, PROP_CHAIN, nonce, target, op.amount_mc)
    return burn(sender, PROP_CHAIN, nonce, target, op.amount_mc)


def _run(ops: list[Op]) -> tuple[MerkleState, list[Transaction]]:
    """Apply ``ops`` one by one, as a mempool would; return the state and what was accepted."""
    state = PROP_APP.genesis_state()
    view = Overlay(state)
    accepted: list[Transaction] = []
    for op in ops:
        nonce = max(0, get_account(view, addr(ACTORS[op.sender])).nonce + op.nonce_shift)
        tx = _tx(op, nonce)
        before = dict(view.writes)
        try:
            PROP_APP.apply_tx(tx, view, CTX)
        except ApplicationError:
            assert view.writes == before
            continue
        accepted.append(tx)
        for account in all_accounts(view).values():
            assert 0 <= account.locked_mc <= account.balance_mc
        assert _money(view) == get_supply(view)
    state.apply(view.writes)
    return state, accepted


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(OPS, min_size=5, max_size=40))
def test_no_sequence_of_transactions_creates_or_destroys_money(ops: list[Op]) -> None:
    state, accepted = _run(ops)
    supply = get_supply(state)
    assert _money(state) == supply
    minted = sum(tx.body.amount_mc for tx in accepted if isinstance(tx.body, Mint))
    burned = sum(tx.body.amount_mc for tx in accepted if isinstance(tx.body, Burn))
    assert supply == 4 * 5_000 + minted - burned
    for actor in ACTORS:
        sent = sum(1 for tx in accepted if tx.sender == actor.key.public_key)
        assert get_account(state, addr(actor)).nonce == sent


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(OPS, min_size=3, max_size=30), cuts=st.lists(st.integers(0, 30), max_size=4))
def test_the_same_blocks_from_genesis_give_the_same_roots(ops: list[Op], cuts: list[int]) -> None:
    _, accepted = _run(ops)
    bounds = sorted({0, len(accepted), *(min(c, len(accepted)) for c in cuts)})
    blocks = [accepted[i:j] for i, j in itertools.pairwise(bounds)]

    def replay(app: Application) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
        state = app.genesis_state()
        roots = [state.root()]
        for height, txs in enumerate(blocks, start=1):
            execution = app.execute_block(state, txs, block_context(height))
            state.apply(execution.writes)
            assert state.root() == execution.state_root
            roots.append(execution.state_root)
        return roots, list(state.items())

    first = replay(PROP_APP)
    # A second, independent application built from the genesis document's JSON.
    second = replay(Application(parse_genesis(PROP_BUNDLE.genesis.canonical_json())))
    assert first == second
    assert first[0][-1] == _run(ops)[0].root()
