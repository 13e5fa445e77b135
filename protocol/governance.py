"""Governance records: what a council proposal may carry (docs/governance.md, ADR 0034).

A council :class:`~gridchain.protocol.tx.Propose` carries one of :data:`GOVERNANCE_KINDS`,
encoded.  The older kinds (RegisterParticipant, Mint, Burn, RegisterMeter) are transaction
bodies too, because a chain whose council is the single genesis governance key may still sign
them directly; the kinds below exist only inside proposals (tags 0x80-0x87), so that the
transaction-kind range 0x10-0x1f is not spent on records nobody sends on their own.

A governance kind added later (say, a validator-set change) becomes proposable by joining
:data:`GOVERNANCE_KINDS`: the proposal machinery decodes, checks and applies any member the
same way the application applies a directly signed governance record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from gridchain.protocol.encoding import (
    U8,
    U64,
    Bytes20,
    Bytes32,
    Record,
    Size,
    decode_one_of,
    register,
)
from gridchain.protocol.meter import MeterId
from gridchain.protocol.tx import (
    MAX_PROPOSED_RECORD_BYTES,
    TX_BODY_TYPES,
    Burn,
    Mint,
    RegisterMeter,
    RegisterParticipant,
    UpdateValidators,
)

#: The most members a council has (genesis.schema.MAX_COUNCIL).
MAX_COUNCIL_MEMBERS = 64
#: The most keys one UpdateGateways adds or removes.
MAX_GATEWAY_CHANGE = 64


@register(0x80)
@dataclass(frozen=True, slots=True)
class RemoveParticipant(Record):
    """Take a participant off the chain: its key can no longer send transactions.

    Its account, its past contracts and receipts stay (settlement still owes and pays them);
    the application refuses the removal while it has money locked in open buy orders.
    """

    address: Bytes20


@register(0x81)
@dataclass(frozen=True, slots=True)
class ReplaceBridgeKey(Record):
    """A meter's bridge was replaced (new device, lost key): readings are now signed by
    ``bridge_key``; the new bridge starts a new reading chain from sequence 0."""

    meter_id: MeterId
    bridge_key: Bytes32


@register(0x82)
@dataclass(frozen=True, slots=True)
class SetParameter(Record):
    """From block ``effective_height`` on, the chain parameter ``name`` (a field of
    genesis ``params`` that market/chain_params.py lists as changeable) is ``value``.

    The height must lie in the future when the council applies the record (ADR 0043), so
    every validator applies the new value from the same block.
    """

    name: Annotated[str, Size(1, 64)]
    value: U64
    effective_height: U64


@register(0x83)
@dataclass(frozen=True, slots=True)
class TariffBand(Record):
    """The grid's prices for the hours [start_hour, end_hour) of every day (UTC), mc/kWh."""

    start_hour: U8
    end_hour: U8
    retail_mc_per_kwh: U64
    feed_in_mc_per_kwh: U64


@register(0x84)
@dataclass(frozen=True, slots=True)
class SetTariffs(Record):
    """From block ``effective_height`` on, the time-of-use tariffs are ``tariffs`` (bands
    that cover 0-24 h in order, as genesis ``params.tariffs`` must)."""

    tariffs: Annotated[tuple[TariffBand, ...], Size(1, 24)]
    effective_height: U64


@register(0x85)
@dataclass(frozen=True, slots=True)
class UpdateCouncil(Record):
    """The council becomes ``members`` (in this order) approving by ``threshold``.

    It replaces the whole council in the block that applies it: from the next transaction
    on, only the new members propose and approve, and an open proposal counts only the
    approvals of members in office (ADR 0043).
    """

    members: Annotated[tuple[Bytes32, ...], Size(0, MAX_COUNCIL_MEMBERS)]
    threshold: U8


@register(0x86)
@dataclass(frozen=True, slots=True)
class UpdateGateways(Record):
    """Admit gateway keys (ADR 0025) and remove others, in the block that applies it:
    validators accept links from an added gateway and close a removed one's (ADR 0043)."""

    add: Annotated[tuple[Bytes32, ...], Size(0, MAX_GATEWAY_CHANGE)]
    remove: Annotated[tuple[Bytes32, ...], Size(0, MAX_GATEWAY_CHANGE)]


#: The longest device id: OCPP's charge point identity is a CiString48 (ADR 0048).
MAX_DEVICE_ID_CHARS = 48
#: A device id: the meter bridge's charge point id pattern (meterbridge/config.py), which is
#: also what OCPP-J puts in the websocket URL path without escaping.
DEVICE_ID_PATTERN = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_DEVICE_ID_CHARS}}}")


@register(0x87)
@dataclass(frozen=True, slots=True)
class LinkDevice(Record):
    """Record on chain which device the registered meter ``meter_id`` measures (ADR 0048).

    ``device_id`` is the charger's OCPP charge point id (or the battery inverter's id): the
    meter bridge's central system finds a charger's meter by it.  An empty ``device_id``
    removes the meter's link; to link a meter to another device, unlink it first.  The wire
    bounds only the length: market/device_links.py refuses anything but 1-48 characters of
    ``A-Z a-z 0-9 . _ : -`` with a typed error.
    """

    meter_id: MeterId
    device_id: Annotated[str, Size(0, MAX_DEVICE_ID_CHARS)]


#: Every record a council may propose, i.e. every record only governance may apply.
GOVERNANCE_KINDS: tuple[type[Record], ...] = (
    RegisterParticipant,
    Mint,
    Burn,
    RegisterMeter,
    RemoveParticipant,
    ReplaceBridgeKey,
    UpdateValidators,
    SetParameter,
    SetTariffs,
    UpdateCouncil,
    UpdateGateways,
    LinkDevice,
)


def decode_proposed(data: bytes) -> Record:
    """The record a proposal carries: any governance kind or transaction kind (the caller
    refuses a non-governance kind by name); raises a DecodeError for anything else."""
    return decode_one_of(
        data, (*GOVERNANCE_KINDS, *TX_BODY_TYPES), max_bytes=MAX_PROPOSED_RECORD_BYTES
    )
