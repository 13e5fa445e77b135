"""What the benchmarks share: deterministic chains, signed transfer streams, a live cluster."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from genesis.builder import GenesisBundle, build_genesis
from genesis.cli import write_bundle
from node.ports import free_port
from node.testnet import down, up
from protocol.address import parse_address
from protocol.crypto import SigningKey, sha256
from protocol.keystore import TESTNET_SCRYPT_N
from protocol.tx import Transaction, Transfer, sign_tx


def bench_bundle(
    label: str,
    *,
    engine: str,
    validators: int,
    participants: int,
    block_interval_ms: int | None = None,
    balance_mc: int = 1_000_000,
    **params: Any,
) -> GenesisBundle:
    """A chain whose keys follow from ``label``, so runs sign the same transactions."""
    counter = iter(range(10**6))
    return build_genesis(
        chain_name="gridchain-bench",
        genesis_time_ms=time.time_ns() // 1_000_000 - 1000,
        validators=validators,
        participants=participants,
        engine=engine,
        new_key=lambda: SigningKey(sha256(f"{label}-{next(counter)}".encode())),
        block_interval_ms=block_interval_ms,
        balance_mc=balance_mc,
        extra_params={"max_block_txs": 5000, **params},
    )


def transfer_streams(bundle: GenesisBundle, per_sender: int) -> list[list[Transaction]]:
    """Per sender, ``per_sender`` signed transfers in nonce order to the last participant."""
    chain_id = bundle.genesis.chain_id
    sink = parse_address(bundle.participants[-1].address)
    return [
        [sign_tx(p.key, chain_id, n, Transfer(sink, 1 + n % 5)) for n in range(per_sender)]
        for p in bundle.participants[:-1]
    ]


def _base_port(count: int) -> int:
    while True:
        base = free_port()
        if base + count < 65000:
            return base


@contextmanager
def running_cluster(bundle: GenesisBundle) -> Iterator[list[str]]:
    """Every validator of ``bundle`` as its own process; yields their API URLs, then stops them."""
    validators = len(bundle.validators)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_bundle(
            bundle,
            directory,
            password="bench",  # noqa: S106 - throwaway keystores in a temporary directory
            scrypt_n=TESTNET_SCRYPT_N,
            base_api_port=_base_port(validators),
            base_p2p_port=_base_port(validators),
        )
        procs = up(directory, timeout_s=60)
        try:
            time.sleep(1.0)  # let the peer links come up
            yield [p.api_url for p in procs]
        finally:
            down(directory)
