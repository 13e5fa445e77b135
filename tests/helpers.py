"""Deterministic builders shared by the unit, simulation and integration tests.

Nothing here is random: keys come from SHA-256 of a label, genesis documents from a counter of
such keys, so every run (and every machine) builds byte-identical chains, and a failure seen
once can be replayed.  Only plain functions live here; pytest fixtures are in the conftest
files and call these.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridchain.genesis.builder import GenesisBundle, NamedKey, build_genesis, participant_name
from gridchain.genesis.schema import parse_genesis
from gridchain.market.accounts import ACCOUNT_PREFIX, Account, get_account
from gridchain.market.app import Application, BlockContext
from gridchain.market.state import MerkleState, StateReader
from gridchain.protocol.address import address_of
from gridchain.protocol.block import (
    Block,
    BlockHeader,
    Certificate,
    Vote,
    VoteStep,
    schedule_root,
    tx_root,
)
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.encoding import decode
from gridchain.protocol.sealed import ValidatorOpener
from gridchain.protocol.tx import (
    Burn,
    Device,
    Mint,
    RegisterParticipant,
    Transaction,
    Transfer,
    TxBody,
    sign_tx,
)

#: 2024-01-01T00:00:00Z: every test chain starts here unless a test says otherwise.
GENESIS_TIME_MS = 1_704_067_200_000
DEFAULT_SEED = "gridchain-test"


def det_key(label: str) -> SigningKey:
    """The Ed25519 key whose seed is SHA-256(label): the same label gives the same key."""
    return SigningKey(sha256(label.encode("utf-8")))


def key_factory(seed: str = DEFAULT_SEED) -> Callable[[], SigningKey]:
    """A ``new_key`` for build_genesis: det_key(f"{seed}/0"), det_key(f"{seed}/1"), ..."""
    counter = 0

    def new_key() -> SigningKey:
        nonlocal counter
        key = det_key(f"{seed}/{counter}")
        counter += 1
        return key

    return new_key


def small_bundle(
    validators: int = 1,
    participants: int = 3,
    engine: str = "solo",
    *,
    seed: str = DEFAULT_SEED,
    chain_name: str = "gridchain-test",
    genesis_time_ms: int = GENESIS_TIME_MS,
    balance_mc: int = 1_000_000,
    **params: Any,
) -> GenesisBundle:
    """A validated genesis with deterministic keys; ``params`` are ChainParams fields.

    Validators are node-1..node-N, participants peer-a, peer-b, ... each holding
    ``balance_mc``, plus a governance key.  Raises GenesisError for a bad value.
    """
    return build_genesis(
        chain_name=chain_name,
        genesis_time_ms=genesis_time_ms,
        validators=validators,
        participants=participants,
        engine=engine,
        new_key=key_factory(seed),
        balance_mc=balance_mc,
        extra_params=params,
    )


def addr(key: SigningKey | NamedKey) -> bytes:
    """The 20-byte address of a key."""
    public = key.key.public_key if isinstance(key, NamedKey) else key.public_key
    return address_of(public)


def signing_key(key: SigningKey | NamedKey) -> SigningKey:
    return key.key if isinstance(key, NamedKey) else key


def signed(key: SigningKey | NamedKey, chain_id: bytes, nonce: int, body: TxBody) -> Transaction:
    return sign_tx(signing_key(key), chain_id, nonce, body)


def transfer(
    sender: SigningKey | NamedKey,
    chain_id: bytes,
    nonce: int,
    to: SigningKey | NamedKey | bytes,
    amount_mc: int,
    *,
    memo: str = "",
) -> Transaction:
    """A signed Transfer; ``to`` is a key or a raw 20-byte address."""
    recipient = to if isinstance(to, bytes) else addr(to)
    return signed(sender, chain_id, nonce, Transfer(recipient, amount_mc, memo))


def register(
    governance: SigningKey | NamedKey,
    chain_id: bytes,
    nonce: int,
    new: SigningKey,
    name: str,
) -> Transaction:
    return signed(governance, chain_id, nonce, RegisterParticipant(new.public_key, name))


def mint(
    governance: SigningKey | NamedKey,
    chain_id: bytes,
    nonce: int,
    to: SigningKey | NamedKey | bytes,
    amount_mc: int,
) -> Transaction:
    recipient = to if isinstance(to, bytes) else addr(to)
    return signed(governance, chain_id, nonce, Mint(recipient, amount_mc))


def burn(
    governance: SigningKey | NamedKey,
    chain_id: bytes,
    nonce: int,
    account: SigningKey | NamedKey | bytes,
    amount_mc: int,
) -> Transaction:
    target = account if isinstance(account, bytes) else addr(account)
    return signed(governance, chain_id, nonce, Burn(target, amount_mc))


def app_and_state(bundle: GenesisBundle) -> tuple[Application, MerkleState]:
    """The application of a bundle and a fresh genesis state."""
    app = Application(bundle.genesis)
    return app, app.genesis_state()


def block_context(height: int = 1, timestamp_ms: int | None = None) -> BlockContext:
    ts = GENESIS_TIME_MS + 1000 * height if timestamp_ms is None else timestamp_ms
    return BlockContext(height=height, timestamp_ms=ts, proposer=b"")


def make_block(
    chain_id: bytes,
    height: int,
    prev_hash: bytes,
    txs: Sequence[Transaction] = (),
    *,
    state_root: bytes = b"\x00" * 32,
    proposer: bytes = b"\x00" * 32,
    timestamp_ms: int | None = None,
    round_: int = 0,
) -> Block:
    """A block with correct tx and schedule roots (the state root is the caller's)."""
    ts = GENESIS_TIME_MS + 1000 * height if timestamp_ms is None else timestamp_ms
    header = BlockHeader(
        chain_id=chain_id,
        height=height,
        prev_hash=prev_hash,
        timestamp_ms=ts,
        proposer=proposer,
        round=round_,
        benefit=0,
        tx_root=tx_root(tuple(txs)),
        schedule_root=schedule_root(()),
        state_root=state_root,
    )
    return Block(header, tuple(txs), ())


def certify(block: Block, keys: Iterable[SigningKey], chain_id: bytes) -> Certificate:
    """A commit certificate for ``block`` signed by every key in ``keys``."""
    vote = Vote(block.height, block.header.round, block.hash(), int(VoteStep.COMMIT))
    return Certificate(vote, tuple(vote.sign(k, chain_id) for k in keys))


def balances_of(state: StateReader, keys: Iterable[NamedKey]) -> dict[str, int]:
    """Balance of each named key, by name."""
    return {k.name: get_account(state, addr(k)).balance_mc for k in keys}


def all_accounts(state: StateReader) -> dict[bytes, Account]:
    """Every account record in the state, by address."""
    n = len(ACCOUNT_PREFIX)
    return {key[n:]: decode(raw, Account) for key, raw in state.scan(ACCOUNT_PREFIX)}


def det_encryption_key(label: str) -> X25519PrivateKey:
    """The X25519 key whose private bytes are SHA-256(label) (clamped by X25519 itself)."""
    return X25519PrivateKey.from_private_bytes(sha256(b"x25519/" + label.encode("utf-8")))


def encryption_key_factory(seed: str = DEFAULT_SEED) -> Callable[[], X25519PrivateKey]:
    """A ``new_encryption_key`` for build_genesis, deterministic like :func:`key_factory`."""
    counter = 0

    def new_key() -> X25519PrivateKey:
        nonlocal counter
        key = det_encryption_key(f"{seed}/{counter}")
        counter += 1
        return key

    return new_key


def sealing_bundle(
    validators: int = 4,
    participants: int = 3,
    engine: str = "pbft",
    *,
    seed: str = DEFAULT_SEED,
    **params: Any,
) -> GenesisBundle:
    """Like :func:`small_bundle`, with an encryption key per validator (sealed transactions)."""
    return build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=validators,
        participants=participants,
        engine=engine,
        new_key=key_factory(seed),
        extra_params=params,
        new_encryption_key=encryption_key_factory(seed),
    )


def validator_openers(bundle: GenesisBundle) -> list[ValidatorOpener]:
    """Each validator's opener of sealed transactions, in genesis order."""
    return [ValidatorOpener(key, i) for i, key in enumerate(bundle.encryption)]


def cd_meter_id(participant: int, device: Device) -> str:
    """The meter :func:`with_cd_meters` registers for participant ``participant``'s device."""
    return f"{participant_name(participant)}-{'ev' if device == Device.EV else 'battery'}"


def cd_meters(bundle: GenesisBundle) -> list[dict[str, Any]]:
    """Genesis ``meters`` entries: an EV and a battery meter for every participant (ids from
    :func:`cd_meter_id`, each participant its own bridge key), so C&D requests can name them."""
    return [
        {
            "meter_id": cd_meter_id(i, device),
            "owner": p.address,
            "meter_type": meter_type,
            "bridge_public_key": p.key.public_key.hex(),
            "profile": "generic",
        }
        for i, p in enumerate(bundle.participants)
        for device, meter_type in ((Device.EV, "EV"), (Device.BATTERY, "Battery"))
    ]


def with_cd_meters(bundle: GenesisBundle) -> GenesisBundle:
    """``bundle`` with :func:`cd_meters` added to its genesis."""
    doc = bundle.genesis.model_dump(mode="json")
    doc["meters"] = [*doc["meters"], *cd_meters(bundle)]
    return dataclasses.replace(bundle, genesis=parse_genesis(doc))
