"""``encode_remembered``: bytes remembered as decoded must be exactly what decoding returns.

Why this matters: the decode memory hands the remembered record to every later ``decode`` of
those bytes, on every path (admission, block execution, the API).  If a remembered record
differed from a decoded one in any field's type (an ``IntEnum`` for an ``int``, a list for a
tuple), validators would hold values of other types than a restarted validator decodes from
the same ledger.  So the property is checked over every record type with a strategy, against a
decode from an empty memory, and the bound of the memory is checked too.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridchain.market.accounts import Account, ParticipantRecord
from gridchain.protocol import encoding
from gridchain.protocol.encoding import Record, decode, encode, encode_remembered, forget_decoded
from gridchain.protocol.tx import Transfer
from tests.unit.protocol.test_encoding_properties import ALL_TYPES, SAMPLES, STRATEGIES

u64 = st.integers(0, 2**64 - 1)


def _typed(value: object) -> object:
    """A record's fields with their exact types, recursively, for comparing two records."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value),
            tuple(_typed(getattr(value, f.name)) for f in dataclasses.fields(value)),
        )
    if isinstance(value, tuple | list):
        return (type(value), tuple(_typed(v) for v in value))
    return (type(value), value)


@pytest.fixture(autouse=True)
def _empty_memory() -> object:
    forget_decoded()
    yield
    forget_decoded()


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_remembered_bytes_decode_to_what_a_fresh_decode_returns(
    cls: type[Record], data: st.DataObject
) -> None:
    value = data.draw(STRATEGIES[cls])
    forget_decoded()
    raw = encode_remembered(value)
    assert raw == encode(value)
    after_remembering = decode(raw, cls)
    forget_decoded()
    fresh = decode(raw, cls)
    assert after_remembering == fresh
    assert _typed(after_remembering) == _typed(fresh)


@settings(max_examples=50, deadline=None)
@given(balance=u64, nonce=u64, locked=u64)
def test_an_account_written_is_read_back_without_decoding(
    balance: int, nonce: int, locked: int
) -> None:
    account = Account(balance, nonce, locked)
    raw = encode_remembered(account)
    assert decode(raw, Account) is account
    forget_decoded()
    assert _typed(decode(raw, Account)) == _typed(account)


def test_records_with_nested_or_repeated_fields_are_not_remembered() -> None:
    """A tuple or record field decodes into a new object, so only records made of identity
    codecs are remembered; a transaction has its own decode-once memory."""
    for name in ("Transaction", "Certificate", "Block"):
        cls = next(c for c in ALL_TYPES if c.__name__ == name)
        raw = encode_remembered(SAMPLES[cls])
        assert decode(raw, cls) is not SAMPLES[cls]
        assert decode(raw, cls) == SAMPLES[cls]
    transfer = Transfer(b"\x02" * 20, 7)  # all scalar: remembered
    assert decode(encode_remembered(transfer), Transfer) is transfer
    participant = ParticipantRecord(b"\x01" * 32, "ann", 3)
    assert decode(encode_remembered(participant), ParticipantRecord) is participant


def test_the_memory_keeps_its_bound() -> None:
    limit = encoding._DECODE_CACHE_ENTRIES
    accounts = [Account(i, i, 0) for i in range(limit + 500)]
    for account in accounts:
        encode_remembered(account)
    assert len(encoding._DECODE_CACHE) == limit
    assert encoding._decode_cache_bytes == sum(len(k[1]) for k in encoding._DECODE_CACHE)
    assert encoding._decode_cache_bytes <= encoding._DECODE_CACHE_BUDGET_BYTES
    # the oldest were forgotten, the newest are remembered
    assert decode(accounts[-1].encode(), Account) is accounts[-1]
    assert decode(accounts[0].encode(), Account) is not accounts[0]
