"""Transactions: a sender's public key, a nonce, a typed body and an Ed25519 signature.

The signature covers ``sign_bytes(Domain.TX, chain_id, encode(TxPayload(...)))``, so a
transaction is bound to one chain.  The transaction hash is SHA-256 of the whole signed
encoding; Ed25519 signatures are deterministic, so one payload has one hash.

Body type tags 0x10-0x1f are reserved for transaction kinds (0x20-0x2f are blocks and
consensus records); see docs/spec/encoding.md.  0x14 is held for RegisterMeter.  0x1a is
:class:`SealedTx`, a body encrypted to the validator set (protocol/sealed.py, docs/sealed.md).
0x1f is :class:`UpdateValidators`, the top of the range, so new kinds keep growing from 0x1b.
0x1b and 0x1c are the council's :class:`Propose` and :class:`Approve` (docs/governance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from typing import Annotated

from gridchain.protocol.address import address_of
from gridchain.protocol.crypto import Domain, SigningKey, sha256, verify
from gridchain.protocol.encoding import (
    U8,
    U64,
    Bytes20,
    Bytes32,
    Bytes64,
    LabelledEnum,
    Record,
    Size,
    decode,
    encode,
    register,
)
from gridchain.protocol.errors import SignatureError
from gridchain.protocol.meter import MeterId, Readings

#: The largest encoded transaction a node accepts (a MeterReadings batch is the largest kind).
MAX_TX_BYTES = 64 * 1024

Memo = Annotated[str, Size(0, 140)]
Name = Annotated[str, Size(1, 64)]


@register(0x10)
@dataclass(frozen=True, slots=True)
class Transfer(Record):
    """Move ``amount_mc`` milli-credits from the sender to ``to``."""

    to: Bytes20
    amount_mc: U64
    memo: Memo = ""


@register(0x11)
@dataclass(frozen=True, slots=True)
class RegisterParticipant(Record):
    """Admit a key to the chain (governance only): the chain is permissioned."""

    public_key: Bytes32
    name: Name


@register(0x12)
@dataclass(frozen=True, slots=True)
class Mint(Record):
    """Create money (governance only); with :class:`Burn` the only way the supply changes."""

    to: Bytes20
    amount_mc: U64


@register(0x13)
@dataclass(frozen=True, slots=True)
class Burn(Record):
    """Destroy money held by ``account`` (governance only)."""

    account: Bytes20
    amount_mc: U64


class Market(LabelledEnum):
    """The two order books of every delivery slot (DESIGN section 6)."""

    DAY_AHEAD = 0
    INTRADAY = 1


class Side(LabelledEnum):
    """Buy = charge or import energy; sell = discharge or export."""

    BUY = 0
    SELL = 1


class Device(IntEnum):
    """The device an order is for (the source's meter types that trade)."""

    EV = 0
    BATTERY = 1
    PV = 2
    LOAD = 3

    @property
    def label(self) -> str:
        return {0: "EV", 1: "Battery", 2: "PV", 3: "Load"}[self.value]


MARKET_BY_LABEL: dict[str, Market] = {m.label: m for m in Market}
SIDE_BY_LABEL: dict[str, Side] = {s.label: s for s in Side}
DEVICE_BY_LABEL: dict[str, Device] = {d.label: d for d in Device}


@register(0x15)
@dataclass(frozen=True, slots=True)
class PlaceOrder(Record):
    """A limit order for one delivery slot of one market.

    ``slot`` is the slot index: the slot delivers in [slot * L, (slot + 1) * L) ms since the
    epoch, L being the genesis ``slot_length_ms``.  ``peak_wh`` > 0 makes it an iceberg order
    that shows at most ``peak_wh`` of ``quantity_wh`` at a time.  ``expiry_ms`` = 0 keeps the
    order until its gate closure.  The order's id is the hash of the transaction.  Enumerated
    fields are plain integers on the wire (see :class:`Market`, :class:`Side`,
    :class:`Device`); the application refuses unknown values with a typed error.
    """

    market: U8
    slot: U64
    side: U8
    device: U8
    price_mc_per_kwh: U64
    quantity_wh: U64
    peak_wh: U64 = 0
    expiry_ms: U64 = 0


@register(0x16)
@dataclass(frozen=True, slots=True)
class CancelOrder(Record):
    """Cancel what is still open of one's own order (its matched part stays a contract)."""

    order_id: Bytes32


@register(0x17)
@dataclass(frozen=True, slots=True)
class AmendOrder(Record):
    """Give the open (unmatched) part of one's own order a new price and quantity.

    ``quantity_wh`` is the new open quantity; what was already matched is a contract and is
    not touched.  Only a smaller quantity at the same price keeps the order's time priority.
    """

    order_id: Bytes32
    price_mc_per_kwh: U64
    quantity_wh: U64


@register(0x14)
@dataclass(frozen=True, slots=True)
class RegisterMeter(Record):
    """Bind a meter to its owner and to the key of the bridge that reads it (governance only).

    ``meter_type`` is a :class:`protocol.meter.MeterType`; ``profile`` names the bridge's
    meter profile (e.g. "eastron-sdm120"), recorded so a reading's origin can be audited.
    """

    meter_id: MeterId
    owner: Bytes20
    meter_type: U8
    bridge_key: Bytes32
    profile: Annotated[str, Size(1, 64)]


@register(0x18)
@dataclass(frozen=True, slots=True)
class MeterReadings(Record):
    """A batch of signed reading records, sent by the bridge key registered for their meters."""

    readings: Readings


class CDKind(LabelledEnum):
    """What a C&D request asks for: charging the vehicle or battery, or discharging it (V2G)."""

    CHARGE = 1
    DISCHARGE = 2


CD_KIND_BY_LABEL: dict[str, CDKind] = {k.label: k for k in CDKind}


@register(0x19)
@dataclass(frozen=True, slots=True)
class CDRequest(Record):
    """An EV or a battery asks to be charged or discharged while it is connected.

    The window is [``arrival_ms``, ``departure_ms``) in block time; the chain maps it to the
    scheduling intervals fully inside it.  A charge request must receive ``energy_wh`` by
    departure; a discharge request offers at most ``energy_wh`` (taking less is allowed).
    ``max_rate_w`` is the charger's (or inverter's) limit.  ``limit_price_mc_per_kwh`` is the
    most the owner pays per kWh charged (or the least it accepts per kWh discharged); it is
    enforced by the scheduler against the interval's C&D price (ADR 0030).  The request's id
    is the hash of the transaction.  ``device`` is a :class:`Device` (EV or Battery);
    ``meter_id`` names the registered meter, owned by the sender, that measures the device (an
    EV meter for an EV, a battery meter for a battery): settlement reads the energy from it.
    """

    kind: U8
    device: U8
    arrival_ms: U64
    departure_ms: U64
    energy_wh: U64
    max_rate_w: U64
    limit_price_mc_per_kwh: U64
    meter_id: MeterId


#: HPKE wraps of a 32-byte content key: enc (32) + key (32) + tag (16).
WRAPPED_KEY_BYTES = 80
#: The most validators a transaction can be sealed to (one wrapped key each).
MAX_SEALED_RECIPIENTS = 256
#: A sealed body is a whole inner TxPayload plus the AEAD tag; it still fits MAX_TX_BYTES.
MAX_SEALED_CIPHERTEXT = MAX_TX_BYTES - MAX_SEALED_RECIPIENTS * (WRAPPED_KEY_BYTES + 2) - 512
WrappedKey = Annotated[bytes, Size(WRAPPED_KEY_BYTES, WRAPPED_KEY_BYTES)]


@register(0x1A)
@dataclass(frozen=True, slots=True)
class SealedTx(Record):
    """A transaction body only the validators can read (protocol/sealed.py, docs/sealed.md).

    ``ciphertext`` is ChaCha20-Poly1305 of the encoded inner :class:`TxPayload` under a random
    content key; ``wrapped_keys[i]`` is that key sealed with HPKE to validator i's encryption
    key in genesis order; ``key_set`` is the hash of those encryption keys, so the sealing can
    be checked against the chain's keys without any private key.  The envelope around it
    (sender, nonce, signature over all of this) is an ordinary :class:`Transaction`.
    """

    key_set: Bytes32
    wrapped_keys: Annotated[tuple[WrappedKey, ...], Size(1, MAX_SEALED_RECIPIENTS)]
    ciphertext: Annotated[bytes, Size(16, MAX_SEALED_CIPHERTEXT)]


@register(0x1F)
@dataclass(frozen=True, slots=True)
class UpdateValidators(Record):
    """Change the validator set (governance only): keys to ``add`` and keys to ``remove``.

    A key is a validator's Ed25519 public key, which is at once its consensus key (it signs
    votes), its link key (it authenticates its peer links, ADR 0024) and its address (derived
    from it): everything the other validators need to count its votes and accept its link.
    A change committed at height H is in force from H + 2 (market/validators.py, ADR 0035).
    """

    add: Annotated[tuple[Bytes32, ...], Size(0, 64)] = ()
    remove: Annotated[tuple[Bytes32, ...], Size(0, 64)] = ()


#: The largest encoded governance record a proposal carries.
MAX_PROPOSED_RECORD_BYTES = 4096


@register(0x1B)
@dataclass(frozen=True, slots=True)
class Propose(Record):
    """A council member proposes a governance record; proposing counts as its approval.

    ``record`` is the canonical encoding of the governance record to apply (any kind in
    protocol.governance.GOVERNANCE_KINDS: RegisterParticipant, RegisterMeter, Mint, ...).  It
    is carried as bytes, not as a typed field, so that a governance kind added later is
    proposable without a new proposal format; the application decodes and checks it.  The
    proposal's id is the hash of the transaction; it can be approved up to and including
    block ``expires_at_height``.
    """

    record: Annotated[bytes, Size(1, MAX_PROPOSED_RECORD_BYTES)]
    expires_at_height: U64


@register(0x1C)
@dataclass(frozen=True, slots=True)
class Approve(Record):
    """Another council member approves an open proposal; the k-th approval applies it."""

    proposal_id: Bytes32


TxBody = (
    Transfer
    | RegisterParticipant
    | Mint
    | Burn
    | PlaceOrder
    | CancelOrder
    | AmendOrder
    | RegisterMeter
    | MeterReadings
    | CDRequest
    | SealedTx
    | UpdateValidators
    | Propose
    | Approve
)
TX_BODY_TYPES: tuple[type[Record], ...] = (
    Transfer,
    RegisterParticipant,
    Mint,
    Burn,
    PlaceOrder,
    CancelOrder,
    AmendOrder,
    RegisterMeter,
    MeterReadings,
    CDRequest,
    SealedTx,
    UpdateValidators,
    Propose,
    Approve,
)


@register(0x01)
@dataclass(frozen=True, slots=True)
class TxPayload(Record):
    """What the sender signs: everything in a transaction but the signature."""

    sender: Bytes32
    nonce: U64
    body: TxBody


@register(0x02)
@dataclass(frozen=True)
class Transaction(Record):
    """A signed transaction.

    Not slotted, so that its canonical bytes and hash are computed once per object: a
    validator needs them at admission, in gossip, in the block's tx root, in the tx index and
    at commit.  The cached values are not dataclass fields, so equality and encoding ignore them.
    ``DECODE_ONCE``: the transaction a validator decoded at admission or from gossip is the
    object a proposal or block carrying the same bytes decodes to (protocol/encoding.py).
    """

    DECODE_ONCE = True

    sender: Bytes32
    nonce: U64
    body: TxBody
    signature: Bytes64

    @property
    def payload(self) -> TxPayload:
        return TxPayload(self.sender, self.nonce, self.body)

    @property
    def kind(self) -> str:
        return type(self.body).__name__

    @property
    def sender_address(self) -> bytes:
        return address_of(self.sender)

    @cached_property
    def encoded(self) -> bytes:
        return encode(self)

    def encode(self) -> bytes:
        return self.encoded

    @cached_property
    def tx_hash(self) -> bytes:
        return sha256(self.encoded)

    def hash(self) -> bytes:
        return self.tx_hash

    def verify_signature(
        self,
        chain_id: bytes,
        verifier: Callable[[bytes, bytes, Domain, bytes, bytes], bool] = verify,
    ) -> None:
        """Raise SignatureError unless the sender signed this payload for this chain.

        ``verifier`` is protocol.crypto.verify; protocol/tx_signatures.py passes the one it
        was given (a test counts calls through it).
        """
        if not verifier(self.sender, self.signature, Domain.TX, chain_id, self.payload.encode()):
            raise SignatureError(
                f"transaction from {self.sender.hex()[:16]}: signature does not verify"
            )


def sign_tx(key: SigningKey, chain_id: bytes, nonce: int, body: TxBody) -> Transaction:
    payload = TxPayload(key.public_key, nonce, body)
    signature = key.sign(Domain.TX, chain_id, payload.encode())
    return Transaction(key.public_key, nonce, body, signature)


def decode_tx(data: bytes) -> Transaction:
    tx = decode(data, Transaction, max_bytes=MAX_TX_BYTES)
    # decode() proved these bytes are the canonical encoding: keep them instead of re-encoding.
    vars(tx).setdefault("encoded", bytes(data))
    return tx
