"""What the benchmarks share: deterministic chains, signed transfer streams, a live cluster."""

from __future__ import annotations

import random
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gridchain.genesis.builder import GenesisBundle, build_genesis
from gridchain.genesis.cli import write_bundle
from gridchain.node.testnet import ValidatorProcess, down, load_gateway_state, up
from gridchain.node.testnet_gateways import ca_file, setup_gateways
from gridchain.ports import free_port
from gridchain.protocol.address import parse_address
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.keystore import TESTNET_SCRYPT_N
from gridchain.protocol.tx import Transaction, Transfer, sign_tx


def bench_bundle(
    label: str,
    *,
    engine: str,
    validators: int,
    participants: int,
    block_interval_ms: int | None = None,
    balance_mc: int = 1_000_000,
    consensus_params: dict[str, Any] | None = None,
    genesis_time_ms: int | None = None,
    gateways: int = 0,
    **params: Any,
) -> GenesisBundle:
    """A chain whose keys follow from ``label``, so runs sign the same transactions.

    ``consensus_params`` go to genesis ``consensus`` (round_ms, finality_depth, ...), the
    other keyword arguments to ``params``; ``genesis_time_ms`` defaults to a second ago.
    """
    counter = iter(range(10**6))
    if genesis_time_ms is None:
        genesis_time_ms = time.time_ns() // 1_000_000 - 1000
    return build_genesis(
        chain_name="gridchain-bench",
        genesis_time_ms=genesis_time_ms,
        validators=validators,
        participants=participants,
        engine=engine,
        new_key=lambda: SigningKey(sha256(f"{label}-{next(counter)}".encode())),
        block_interval_ms=block_interval_ms,
        balance_mc=balance_mc,
        extra_params={"max_block_txs": 5000, **params},
        consensus_params=consensus_params,
        gateways=gateways,
    )


def transfer_streams(bundle: GenesisBundle, per_sender: int) -> list[list[Transaction]]:
    """Per sender, ``per_sender`` signed transfers in nonce order to the last participant."""
    chain_id = bundle.genesis.chain_id
    sink = parse_address(bundle.participants[-1].address)
    return [
        [sign_tx(p.key, chain_id, n, Transfer(sink, 1 + n % 5)) for n in range(per_sender)]
        for p in bundle.participants[:-1]
    ]


def _all_free(base: int, count: int) -> bool:
    """Whether every port of base .. base+count-1 can be bound on loopback right now."""
    socks: list[socket.socket] = []
    try:
        for port in range(base, base + count):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()
    return True


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _base_port(count: int) -> int:
    """A base port whose whole block of ``count`` ports is free, below the kernel's ephemeral
    range: a validator that cannot bind its port exits at start, and inside that range the
    outgoing connections of validators already running (16 x 15 peer links) can take a port
    between this check and the bind.  Ports from 20000 on are left to the tests
    (tests/procs.py hands them out per pytest worker)."""
    low, high = 10_000, min(20_000, _ephemeral_start()) - count
    if high <= low:  # an unusual port range: fall back to what the OS hands out
        while True:
            base = free_port()
            if base + count < 65000 and _all_free(base, count):
                return base
    rng = random.Random()
    while True:
        base = rng.randrange(low, high)
        if _all_free(base, count):
            return base


@contextmanager
def running_validators(
    bundle: GenesisBundle,
    *,
    base_api_port: int | None = None,
    base_p2p_port: int | None = None,
    settle_s: float = 1.0,
) -> Iterator[list[ValidatorProcess]]:
    """Every validator of ``bundle`` as its own process; yields them (pid, API URL), then stops
    them.  Ports default to free ones found here; tests pass blocks from their own port range.
    """
    validators = len(bundle.validators)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        api = _base_port(validators) if base_api_port is None else base_api_port
        p2p = base_p2p_port
        while p2p is None or (api <= p2p < api + validators) or (p2p <= api < p2p + validators):
            p2p = _base_port(validators)
        write_bundle(
            bundle,
            directory,
            password="bench",  # noqa: S106 - throwaway keystores in a temporary directory
            scrypt_n=TESTNET_SCRYPT_N,
            base_api_port=api,
            base_p2p_port=p2p,
        )
        procs = up(directory, timeout_s=60.0)
        try:
            time.sleep(settle_s)  # let the peer links come up
            yield procs
        finally:
            down(directory)


@contextmanager
def running_cluster(
    bundle: GenesisBundle,
    *,
    base_api_port: int | None = None,
    base_p2p_port: int | None = None,
    settle_s: float = 1.0,
) -> Iterator[list[str]]:
    """Every validator of ``bundle`` as its own process; yields their API URLs, then stops them."""
    with running_validators(
        bundle, base_api_port=base_api_port, base_p2p_port=base_p2p_port, settle_s=settle_s
    ) as procs:
        yield [p.api_url for p in procs]


@contextmanager
def running_gateway_testnet(
    bundle: GenesisBundle, *, settle_s: float = 1.0
) -> Iterator[tuple[list[ValidatorProcess], list[ValidatorProcess], Path]]:
    """The validators of ``bundle`` behind its gateways (``testnet up --gateways``), each its
    own process; yields (validators, gateways, the community CA file), then stops them."""
    validators = len(bundle.validators)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        api = _base_port(validators)
        p2p = _base_port(validators)
        while api <= p2p < api + validators or p2p <= api < p2p + validators:
            p2p = _base_port(validators)
        gateway_port = _base_port(len(bundle.gateways))
        write_bundle(
            bundle,
            directory,
            password="bench",  # noqa: S106 - throwaway keystores in a temporary directory
            scrypt_n=TESTNET_SCRYPT_N,
            base_api_port=api,
            base_p2p_port=p2p,
        )
        setup_gateways(directory, base_port=gateway_port)
        procs = up(directory, timeout_s=60.0)
        try:
            time.sleep(settle_s)
            gateways = load_gateway_state(directory)
            names = {g.name for g in gateways}
            yield [p for p in procs if p.name not in names], gateways, ca_file(directory)
        finally:
            down(directory)
