"""JSON views of ledger objects for the HTTP API: hex for bytes, gc1 text for addresses."""

from __future__ import annotations

from typing import Any

from protocol.address import address_of, format_address
from protocol.block import Block, Certificate, CommittedBlock
from protocol.encoding import to_jsonable
from protocol.tx import Transaction


def tx_view(tx: Transaction) -> dict[str, Any]:
    body = to_jsonable(tx.body, format_address)
    return {
        "hash": tx.hash().hex(),
        "kind": tx.kind,
        "sender": tx.sender.hex(),
        "sender_address": format_address(address_of(tx.sender)),
        "nonce": tx.nonce,
        "body": body,
        "signature": tx.signature.hex(),
    }


def certificate_view(cert: Certificate) -> dict[str, Any]:
    view: dict[str, Any] = to_jsonable(cert)
    return view


def block_view(block: Block, certificate: Certificate | None) -> dict[str, Any]:
    header: dict[str, Any] = to_jsonable(block.header)
    return {
        "height": block.height,
        "hash": block.hash().hex(),
        "header": header,
        "txs": [tx_view(tx) for tx in block.txs],
        "schedule": to_jsonable(block.schedule),
        "certificate": None if certificate is None else certificate_view(certificate),
    }


def committed_view(committed: CommittedBlock) -> dict[str, Any]:
    return block_view(committed.block, committed.certificate)
