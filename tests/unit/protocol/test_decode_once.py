"""Decoding faster without decoding differently (ADR 0040).

Why: a transaction decoded at admission is reused when a block carrying it is decoded, the
canonical check re-packs the wire values instead of re-encoding the records, and field paths
are formatted only for an error.  None of that may change what bytes mean or what a refusal
says: a non-canonical transaction inside a block is still refused, an error still names the
field it is about, and a record that would change its values on construction (which would
break the re-packing argument) cannot be registered.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack
import pytest

from gridchain.protocol.block import Block
from gridchain.protocol.encoding import U64, Record, decode, register
from gridchain.protocol.errors import FieldValueError, NonCanonicalError
from gridchain.protocol.tx import decode_tx
from tests.helpers import make_block, small_bundle, transfer

BUNDLE = small_bundle(participants=3, seed="decode-once")
CID = BUNDLE.genesis.chain_id
A, B, _ = BUNDLE.participants


def test_a_block_decodes_to_the_transactions_decoded_before() -> None:
    txs = [transfer(A, CID, n, B, 1 + n) for n in range(3)]
    admitted = [decode_tx(tx.encode()) for tx in txs]
    block = decode(make_block(CID, 1, bytes(32), txs).encode(), Block)

    assert all(x is y for x, y in zip(block.txs, admitted, strict=True))
    assert block.txs == tuple(txs)


def test_a_known_transaction_wider_encoded_inside_a_block_is_still_non_canonical() -> None:
    tx = transfer(A, CID, 0, B, 5)
    decode_tx(tx.encode())  # known to this process
    wire = msgpack.unpackb(make_block(CID, 1, bytes(32), [tx]).encode())
    body = msgpack.packb(wire, use_bin_type=True)
    # The transaction's nonce 0 as a uint64 (0xcf + 8 bytes) instead of a fixint: it follows
    # the array header, tag, version and the sender (0xc4 0x20 + 32 bytes).
    tx_wire = msgpack.packb(wire[3][0], use_bin_type=True)
    at = 3 + 2 + 32
    assert tx_wire[at] == 0
    wider = tx_wire[:at] + b"\xcf" + bytes(8) + tx_wire[at + 1 :]
    assert msgpack.unpackb(wider) == wire[3][0]
    with pytest.raises(NonCanonicalError):
        decode(body.replace(tx_wire, wider), Block)


def test_a_refusal_names_the_field_inside_a_list() -> None:
    txs = [transfer(A, CID, n, B, 1 + n) for n in range(3)]
    wire = msgpack.unpackb(make_block(CID, 1, bytes(32), txs).encode())
    wire[3][2][4][3] = -1  # txs[2].body.amount_mc, out of range
    with pytest.raises(FieldValueError, match=r"Block\.txs\[2\]\.body\.amount_mc"):
        decode(msgpack.packb(wire, use_bin_type=True), Block)


def test_a_record_with_post_init_cannot_be_registered() -> None:
    with pytest.raises(TypeError, match="__post_init__"):

        @register(0x7F)
        @dataclass(frozen=True, slots=True)
        class Rounded(Record):
            value: U64

            def __post_init__(self) -> None:
                object.__setattr__(self, "value", self.value - self.value % 10)
