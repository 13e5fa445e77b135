"""Real validator processes for integration and end-to-end tests.

A :class:`Chain` is a genesis written to a temporary directory with free loopback ports;
:class:`NodeProcess` runs ``python -m gridchain node run`` on one of its configs, exactly as a
user would, and offers the blunt instruments tests need (SIGTERM, kill -9, restart).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridchain.genesis.builder import GenesisBundle, build_genesis
from gridchain.genesis.cli import write_bundle
from gridchain.genesis.schema import parse_genesis
from gridchain.protocol.address import parse_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.keystore import TESTNET_SCRYPT_N
from gridchain.protocol.tx import Transaction, Transfer, sign_tx

PASSWORD = "integration-password"
REPO = Path(__file__).resolve().parent.parent


def _worker_range() -> range:
    """Ports this pytest process hands out: below the kernel's ephemeral range (so no outgoing
    connection can be holding one) and disjoint between xdist workers (so two tests started at
    the same moment never pick the same block).  GRIDCHAIN_TEST_PORT_BASE and
    GRIDCHAIN_TEST_PORT_SPAN move and size the ranges, so that two test runs on one machine
    (two checkouts) keep out of each other's way."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    base = int(os.environ.get("GRIDCHAIN_TEST_PORT_BASE", "20000"))
    span = int(os.environ.get("GRIDCHAIN_TEST_PORT_SPAN", "2000"))
    start = base + (index % 6) * span
    return range(start, start + span)


_next_port: dict[str, int] = {}


def free_port_block(count: int) -> int:
    """A base port such that base .. base+count-1 are free right now (see _worker_range)."""
    ports = _worker_range()
    for _ in range(len(ports) // count):
        base = _next_port.get("base", ports.start)
        if base + count > ports.stop:
            base = ports.start
        _next_port["base"] = base + count
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no block of free ports")


def free_test_port() -> int:
    """One port from this worker's range (below the ephemeral range: a dial to a port there
    that nobody listens on yet cannot self-connect and occupy it)."""
    return free_port_block(1)


@dataclass
class Chain:
    directory: Path
    bundle: GenesisBundle
    base_api_port: int

    @property
    def chain_id(self) -> bytes:
        return self.bundle.genesis.chain_id

    def config_path(self, index: int = 0) -> Path:
        return self.directory / "nodes" / self.bundle.validators[index].name / "config.toml"

    def gateway_config_path(self, index: int = 0) -> Path:
        return self.directory / "gateways" / self.bundle.gateways[index].name / "config.toml"

    def wallet_path(self, name: str) -> Path:
        return self.directory / "wallets" / f"{name}.json"

    def api_url(self, index: int = 0) -> str:
        return f"http://127.0.0.1:{self.base_api_port + index}"

    def peer(self, i: int) -> SigningKey:
        return self.bundle.participants[i].key

    def address(self, i: int) -> bytes:
        return parse_address(self.bundle.participants[i].address)

    def transfer(
        self, sender: int, to: int, nonce: int, amount_mc: int, memo: str = ""
    ) -> Transaction:
        return sign_tx(
            self.peer(sender), self.chain_id, nonce, Transfer(self.address(to), amount_mc, memo)
        )


def pv_and_load_meters(bridge: SigningKey) -> Callable[[GenesisBundle], dict[str, Any]]:
    """``genesis_changes`` registering two meters read by ``bridge``: participant 0's PV meter
    ``pv-a`` and participant 1's load meter ``load-b`` (both SDM120s)."""

    def changes(bundle: GenesisBundle) -> dict[str, Any]:
        peers = bundle.participants

        def meter(meter_id: str, owner: str, meter_type: str) -> dict[str, Any]:
            return {
                "meter_id": meter_id,
                "owner": owner,
                "meter_type": meter_type,
                "bridge_public_key": bridge.public_key.hex(),
                "profile": "eastron-sdm120",
            }

        return {
            "meters": [
                meter("pv-a", peers[0].address, "PV"),
                meter("load-b", peers[1].address, "Loadmeter"),
            ]
        }

    return changes


def make_chain(
    directory: Path,
    *,
    validators: int = 1,
    engine: str = "solo",
    block_interval_ms: int = 100,
    genesis_changes: Callable[[GenesisBundle], dict[str, Any]] | None = None,
    sealed: bool = False,
    gateways: int = 0,
    genesis_age_ms: int = 1000,
    council: int = 0,
    threshold: int = 0,
    **params: Any,
) -> Chain:
    """A fresh chain in ``directory``; ``params`` are further genesis ChainParams fields
    (``slot_length_ms=2000, gate_closure_ms=1000`` for a market test that runs in seconds).

    ``genesis_changes`` returns top-level genesis fields to set from the generated keys (e.g.
    ``meters`` owned by the participants); the document is validated again.  ``sealed`` gives
    every validator an encryption key (sealed transactions, docs/sealed.md).  ``council`` > 0
    names a governance council approving by ``threshold`` (wallets/council-<i>.json).  The
    genesis time is ``genesis_age_ms`` before now (a chain built ahead of time needs room for
    its blocks' timestamps)."""
    bundle = build_genesis(
        chain_name="gridchain-it",
        genesis_time_ms=time.time_ns() // 1_000_000 - genesis_age_ms,
        validators=validators,
        participants=3,
        engine=engine,
        new_key=SigningKey.generate,
        block_interval_ms=block_interval_ms,
        extra_params=params,
        new_encryption_key=X25519PrivateKey.generate if sealed else None,
        gateways=gateways,
        council=council,
        threshold=threshold,
    )
    if genesis_changes is not None:
        doc = bundle.genesis.model_dump(mode="json")
        doc.update(genesis_changes(bundle))
        bundle = replace(bundle, genesis=parse_genesis(doc))
    base_api = free_port_block(validators)
    base_p2p = free_port_block(validators)
    write_bundle(
        bundle,
        directory,
        password=PASSWORD,
        scrypt_n=TESTNET_SCRYPT_N,
        base_api_port=base_api,
        base_p2p_port=base_p2p,
    )
    return Chain(directory, bundle, base_api)


@dataclass
class NodeProcess:
    config: Path
    api_url: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: RLIMIT_NOFILE of the node process (None: inherited), as a small device would have.
    max_open_files: int | None = None

    def start(self, *, wait: bool = True) -> NodeProcess:
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gridchain", "node", "run", "--config", str(self.config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, **self.env},
            preexec_fn=self._preexec if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
        log.close()
        if wait:
            self.wait_healthy()
        return self

    def _preexec(self) -> None:
        die_with_parent()
        if self.max_open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_open_files, self.max_open_files))

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited with {self.proc.returncode}:\n{self.log_tail()}")
            status, _ = http_get(self.api_url + "/health")
            if status == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"node not healthy after {timeout_s} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout_s: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def die_with_parent() -> None:
    """Run in the child before exec: end it with SIGTERM if the test process dies.

    A test run that is killed (a CI time-out, Ctrl-C twice) runs no fixture teardown; without
    this its validator processes would outlive it and load the machine.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class GridchainChild:
    """A ``python -m gridchain ...`` child process (a meter simulator, a bridge) with its output
    in a log file; it dies with the test process and stops with SIGTERM, then SIGKILL."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gridchain", *args],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                preexec_fn=die_with_parent,  # noqa: PLW1509
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def node_for(chain: Chain, index: int = 0) -> NodeProcess:
    config = chain.config_path(index)
    return NodeProcess(config, chain.api_url(index), config.parent / "node.log")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    return _http(urllib.request.Request(url), timeout)


def http_post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    return _http(req, 10.0)


def _http(req: urllib.request.Request, timeout: float) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for(predicate: Callable[..., object], timeout_s: float, nodes: list[NodeProcess]) -> None:
    """Poll ``predicate`` every 100 ms; fail with the nodes' log tails if it stays false."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    logs = "\n".join(f"--- {n.config.parent.name}\n{n.log_tail(1500)}" for n in nodes)
    raise AssertionError(f"condition not met within {timeout_s} s\n{logs}")


def wait_until(predicate: Callable[..., object], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 250 ms; fail naming ``what`` if it stays false (for waits that
    have no node logs to show, e.g. of a whole testnet started by the launcher)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def connected_peers(node: NodeProcess) -> int:
    """How many peer links ``node`` reports as connected (-1 if it does not answer)."""
    code, body = http_get(node.api_url + "/v1/status", timeout=2.0)
    if code != 200:
        return -1
    return sum(1 for p in body.get("peers", []) if p.get("connected"))


@contextmanager
def running_cluster(chain: Chain) -> Iterator[list[NodeProcess]]:
    """Every validator of ``chain`` as its own process, healthy and linked to all the others;
    they are stopped on the way out, whatever happened."""
    nodes = [node_for(chain, i) for i in range(len(chain.bundle.validators))]
    for node in nodes:
        node.start(wait=False)
    try:
        for node in nodes:
            node.wait_healthy()
        others = len(nodes) - 1
        wait_for(lambda: all(connected_peers(n) == others for n in nodes), 30, nodes)
        yield nodes
    finally:
        for node in nodes:
            node.terminate()


def submit(api_url: str, tx: Transaction) -> tuple[int, Any]:
    return http_post(api_url + "/v1/txs", json.dumps({"tx": tx.encode().hex()}).encode())


def wait_committed(api_url: str, tx_hash: str, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body = http_get(f"{api_url}/v1/txs/{tx_hash}")
        if status == 200 and body["status"] == "committed":
            result: dict[str, Any] = body
            return result
        time.sleep(0.05)
    raise AssertionError(f"tx {tx_hash} not committed within {timeout_s} s")
