"""Accounts, participants and the money supply as typed records in the state.

The state's key schema lives here (the node stores these keys under its own state prefix).
State values use the same canonical encoding as the wire (tags 0x40-0x4f), so the state root
depends only on the values, never on Python object layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.encoding import U64, Bytes32, Record, decode, encode_remembered, register
from gridchain.protocol.tx import Name

ACCOUNT_PREFIX = b"acct:"
PARTICIPANT_PREFIX = b"part:"
SUPPLY_KEY = b"meta:supply"


@register(0x40)
@dataclass(frozen=True, slots=True)
class Account(Record):
    balance_mc: U64 = 0
    nonce: U64 = 0
    #: Escrowed for open buy orders: part of the account's money, not spendable.
    locked_mc: U64 = 0


@register(0x41)
@dataclass(frozen=True, slots=True)
class ParticipantRecord(Record):
    public_key: Bytes32
    name: Name
    registered_height: U64


@register(0x42)
@dataclass(frozen=True, slots=True)
class Supply(Record):
    total_mc: U64


def account_key(address: bytes) -> bytes:
    return ACCOUNT_PREFIX + address


def participant_key(address: bytes) -> bytes:
    return PARTICIPANT_PREFIX + address


def get_account(state: StateReader, address: bytes) -> Account:
    raw = state.get(account_key(address))
    return Account() if raw is None else decode(raw, Account)


def put_account(state: Overlay, address: bytes, account: Account) -> None:
    """Write ``account``; its bytes are remembered as decoded, because the next transaction
    of the sender, or to the recipient, reads it back (protocol/encoding.py
    ``encode_remembered``)."""
    state.put(account_key(address), encode_remembered(account))


def get_participant(state: StateReader, address: bytes) -> ParticipantRecord | None:
    raw = state.get(participant_key(address))
    return None if raw is None else decode(raw, ParticipantRecord)


def iter_participants(state: StateReader) -> Iterator[tuple[bytes, ParticipantRecord]]:
    """Every registered participant and its address, in address order."""
    for key, raw in state.scan(PARTICIPANT_PREFIX):
        yield key[len(PARTICIPANT_PREFIX) :], decode(raw, ParticipantRecord)


def put_participant(state: Overlay, address: bytes, record: ParticipantRecord) -> None:
    state.put(participant_key(address), record.encode())


def get_supply(state: StateReader) -> int:
    raw = state.get(SUPPLY_KEY)
    return 0 if raw is None else decode(raw, Supply).total_mc


def put_supply(state: Overlay, total_mc: int) -> None:
    state.put(SUPPLY_KEY, Supply(total_mc).encode())
