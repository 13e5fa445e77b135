"""The wallet's sealed side (docs/sealed.md): seal a transaction to the validators, and read
the account's own private data with a signed request answered sealed to a fresh key.

Sealing is asked for with ``--sealed`` rather than done whenever the chain could: a sealed
transaction that does not apply is no longer refused at submission but recorded as refused
(its nonce used), so the wallet must then look its outcome up, and a user should choose that.
"""

from __future__ import annotations

import argparse
import os

from pydantic import BaseModel

from gridchain.api import models as m
from gridchain.api.client import NodeClient
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.sealed import seal_tx
from gridchain.protocol.sealed_read import ReadKind
from gridchain.protocol.tx import Transaction, TxBody

M = type[BaseModel]


class ChainSealsNothingError(GridchainError):
    """``--sealed`` on a chain whose genesis registers no validator encryption keys."""

    code = "sealed_disabled"


class SealedTxRefusedError(GridchainError):
    """The chain recorded the sealed transaction as refused (its nonce is used)."""

    code = "sealed_refused"


def add_sealed_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--sealed",
        action="store_true",
        help=f"{what} (only the validators can read it; docs/sealed.md)",
    )


async def encryption_keys(node: NodeClient) -> tuple[bytes, ...]:
    """The validators' encryption keys in genesis order, as the node reports them."""
    validators = (await node.validators()).validators
    keys = [v.encryption_key for v in validators]
    if not keys or any(k is None for k in keys):
        raise ChainSealsNothingError(
            "this chain registers no encryption keys for its validators: it cannot seal"
        )
    return tuple(bytes.fromhex(k) for k in keys if k is not None)


async def sealed_tx(
    node: NodeClient, key: SigningKey, chain_id: bytes, nonce: int, body: TxBody
) -> Transaction:
    """``body`` sealed to the chain's validators with a fresh content key."""
    keys = await encryption_keys(node)
    return seal_tx(key, chain_id, nonce, body, keys, content_key=os.urandom(32))


async def read_own(node: NodeClient, key: SigningKey, kind: ReadKind) -> BaseModel:
    """The account's own private data of ``kind``, read sealed."""
    status = await node.status()
    return await node.sealed_read(key, status.chain_id, kind)


async def outcome_of(node: NodeClient, key: SigningKey, tx_hash: str) -> m.SealedOutcome | None:
    """What the chain made of one sealed transaction of this account (None: not yet known)."""
    found = await read_own(node, key, ReadKind.SEALED_OUTCOMES)
    if not isinstance(found, m.SealedOutcomeList):
        raise TypeError(type(found).__name__)
    return next((o for o in found.outcomes if o.tx_hash == tx_hash), None)
