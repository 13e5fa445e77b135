"""Sealed transactions in the application: four validators, each opening with its own key,
execute a sealed order exactly as the plain one and reach one state root; a body that does
not open or does not apply is a recorded refusal that uses the nonce on every validator."""

from __future__ import annotations

import pytest

from gridchain.market.accounts import get_account
from gridchain.market.app import Application, BlockContext
from gridchain.market.errors import (
    NonceGapError,
    NotRegisteredError,
    SealedDisabledError,
    SealedKeySetError,
    SealedUnavailableError,
)
from gridchain.market.orders import contracts, get_order
from gridchain.market.sealed_outcomes import SealedStatus, get_outcome, outcomes_of
from gridchain.market.state import MerkleState
from gridchain.protocol.crypto import sha256
from gridchain.protocol.sealed import seal_tx
from gridchain.protocol.tx import Market, PlaceOrder, SealedTx, Side, Transaction, sign_tx
from tests.helpers import addr, det_key, sealing_bundle, small_bundle, validator_openers
from tests.unit.market.conftest import EARLY_MS, SLOT

BUNDLE = sealing_bundle(4)
CHAIN = BUNDLE.genesis.chain_id
KEYS = BUNDLE.genesis.encryption_keys()
ALICE, BOB = BUNDLE.participants[0], BUNDLE.participants[1]
CTX = BlockContext(1, EARLY_MS, b"")


def order(side: Side, price: int, quantity: int) -> PlaceOrder:
    device = 1 if side == Side.SELL else 3
    return PlaceOrder(int(Market.INTRADAY), SLOT, int(side), device, price, quantity, 0, 0)


def sealed(who: object, nonce: int, body: PlaceOrder, label: str = "") -> Transaction:
    key = who.key  # type: ignore[attr-defined]
    return seal_tx(key, CHAIN, nonce, body, KEYS, content_key=sha256(f"{label}{nonce}".encode()))


def validators() -> list[Application]:
    return [Application(BUNDLE.genesis, opener) for opener in validator_openers(BUNDLE)]


def run(apps: list[Application], txs: list[Transaction]) -> list[MerkleState]:
    """Execute one block on each validator; every one must reach the same root."""
    states = []
    roots = set()
    for app in apps:
        state = app.genesis_state()
        execution = app.execute_block(state, txs, CTX)
        state.apply(execution.writes)
        roots.add(execution.state_root)
        states.append(state)
    assert len(roots) == 1
    return states


def test_a_sealed_order_matches_like_a_plain_one_on_every_validator() -> None:
    sell = sealed(ALICE, 0, order(Side.SELL, 200_000, 1_000))
    buy = sealed(BOB, 0, order(Side.BUY, 210_000, 1_000))
    states = run(validators(), [sell, buy])
    for state in states:
        assert get_order(state, sell.hash()) is not None  # the order id is the envelope's hash
        (trade,) = contracts(state, party=addr(ALICE))
        assert trade.quantity_wh == 1_000
        assert get_outcome(state, addr(BOB), buy.hash()).status == SealedStatus.APPLIED  # type: ignore[union-attr]
    # The same trade as the plain transactions would make.
    plain = Application(BUNDLE.genesis)
    state = plain.genesis_state()
    txs = [
        sign_tx(ALICE.key, CHAIN, 0, order(Side.SELL, 200_000, 1_000)),
        sign_tx(BOB.key, CHAIN, 0, order(Side.BUY, 210_000, 1_000)),
    ]
    state.apply(plain.execute_block(state, txs, CTX).writes)
    (plain_trade,) = contracts(state, party=addr(ALICE))
    assert plain_trade.price_mc_per_kwh == trade.price_mc_per_kwh


def test_a_sealed_body_that_does_not_apply_is_a_recorded_refusal_that_uses_the_nonce() -> None:
    bad = sealed(ALICE, 0, order(Side.BUY, 0, 1_000))  # price 0 is refused by the exchange
    after = sealed(ALICE, 1, order(Side.SELL, 200_000, 500))
    for state in run(validators(), [bad, after]):
        assert get_account(state, addr(ALICE)).nonce == 2
        refused = get_outcome(state, addr(ALICE), bad.hash())
        assert refused is not None
        assert refused.status == SealedStatus.REFUSED
        assert refused.code == "invalid_price"
        assert get_order(state, bad.hash()) is None
        assert [o.tx_hash for o in outcomes_of(state, addr(ALICE))] == sorted(
            [bad.hash(), after.hash()]
        )


def test_a_wrap_moved_to_another_envelope_is_a_recorded_refusal_on_every_validator() -> None:
    stolen = sealed(ALICE, 0, order(Side.SELL, 200_000, 1_000)).body
    moved = sign_tx(BOB.key, CHAIN, 0, stolen)
    for state in run(validators(), [moved]):
        outcome = get_outcome(state, addr(BOB), moved.hash())
        assert outcome is not None
        assert outcome.code == "sealed_cannot_open"
        assert get_account(state, addr(BOB)).nonce == 1
        assert get_order(state, moved.hash()) is None


def test_admission_runs_the_same_path() -> None:
    app = validators()[0]
    state = app.genesis_state()
    view = app.check_tx(sealed(ALICE, 0, order(Side.SELL, 200_000, 1_000)), state, CTX)
    assert get_account(view, addr(ALICE)).nonce == 1


def test_envelope_refusals_change_nothing() -> None:
    app = validators()[0]
    state = app.genesis_state()
    with pytest.raises(NonceGapError):
        app.check_tx(sealed(ALICE, 5, order(Side.SELL, 200_000, 1_000)), state, CTX)
    stranger = det_key("stranger")
    body = sealed(ALICE, 0, order(Side.SELL, 200_000, 1_000)).body
    with pytest.raises(NotRegisteredError):
        app.check_tx(sign_tx(stranger, CHAIN, 0, body), state, CTX)
    assert isinstance(body, SealedTx)
    wrong_set = SealedTx(b"\x00" * 32, body.wrapped_keys, body.ciphertext)
    with pytest.raises(SealedKeySetError):
        app.check_tx(sign_tx(ALICE.key, CHAIN, 0, wrong_set), state, CTX)
    too_few = SealedTx(body.key_set, body.wrapped_keys[:3], body.ciphertext)
    with pytest.raises(SealedKeySetError):
        app.check_tx(sign_tx(ALICE.key, CHAIN, 0, too_few), state, CTX)


def test_a_node_without_an_encryption_key_refuses_sealed_transactions() -> None:
    app = Application(BUNDLE.genesis)
    with pytest.raises(SealedUnavailableError):
        app.check_tx(
            sealed(ALICE, 0, order(Side.SELL, 200_000, 1_000)),
            app.genesis_state(),
            CTX,
        )


def test_a_chain_without_encryption_keys_refuses_sealed_transactions() -> None:
    plain = small_bundle()
    app = Application(plain.genesis)
    who = plain.participants[0].key
    tx = seal_tx(
        who,
        plain.genesis.chain_id,
        0,
        order(Side.SELL, 200_000, 1_000),
        KEYS,
        content_key=sha256(b"x"),
    )
    with pytest.raises(SealedDisabledError):
        app.check_tx(tx, app.genesis_state(), CTX)
