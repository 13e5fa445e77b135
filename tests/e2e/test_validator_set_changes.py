"""Validator-set changes on a running PBFT or PoB testnet, with real processes (ADR 0035, 0044).

Four validators run under a steady load of transfers.  Governance admits a fifth validator,
started as its own process from its own key folder (same genesis, not in the genesis set): it
catches up from certified blocks and its signature appears in certificates from its activation
height (the commit height + 2).  Then governance removes one of the genesis validators: its
signature never appears in a certificate from its removal height on.  Throughout, the chain
does not halt, and every validator of the final set has the same blocks.  The removed validator
says once that it was removed and stops dialing, and the others stop dialing it (ADR 0044).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridchain.genesis.builder import GenesisBundle
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import Transaction, UpdateValidators, sign_tx
from tests.procs import (
    Chain,
    NodeProcess,
    free_test_port,
    http_get,
    make_chain,
    running_cluster,
    submit,
    wait_committed,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def block(node: NodeProcess, height: int) -> dict[str, Any] | None:
    code, body = http_get(f"{node.api_url}/v1/blocks/{height}")
    return body if code == 200 else None


def head(node: NodeProcess) -> int:
    code, body = http_get(f"{node.api_url}/v1/status", timeout=2.0)
    return int(body["height"]) if code == 200 else -1


def signers(node: NodeProcess, height: int) -> set[str]:
    found = block(node, height)
    assert found is not None, f"block {height} missing on {node.config.parent.name}"
    return {s["validator"] for s in found["certificate"]["signatures"]}


def joiner_config(chain: Chain, key: SigningKey, folder: Path) -> NodeProcess:
    """A fifth validator's own folder: its key, its ports, the genesis validators as peers."""
    folder.mkdir(parents=True)
    api_port, p2p_port = free_test_port(), free_test_port()
    first = chain.config_path(0).read_text()
    base_p2p = int(first.split("[p2p]")[1].split("port = ")[1].split("\n")[0])
    lines = [
        "[node]",
        'name = "validator-5"',
        'data_dir = "data"',
        f'genesis_file = "{chain.directory / "genesis.json"}"',
        f'private_key = "{key.seed.hex()}"',
        "",
        "[api]",
        'host = "127.0.0.1"',
        f"port = {api_port}",
        "",
        "[p2p]",
        'host = "127.0.0.1"',
        f"port = {p2p_port}",
    ]
    for j, v in enumerate(chain.bundle.validators):
        lines += [
            "",
            "[[p2p.peers]]",
            f'name = "{v.name}"',
            f'public_key = "{v.key.public_key.hex()}"',
            'host = "127.0.0.1"',
            f"port = {base_p2p + j}",
        ]
    lines += ["", "[log]", 'level = "info"', ""]
    config = folder / "config.toml"
    config.write_text("\n".join(lines))
    config.chmod(0o600)
    return NodeProcess(config, f"http://127.0.0.1:{api_port}", folder / "node.log")


class Load:
    """Transfers around the ring of participants, one every few ms, until stopped."""

    def __init__(self, chain: Chain, nodes: list[NodeProcess]) -> None:
        self.chain = chain
        self.nodes = nodes
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        nonces = [0, 0, 0]
        while not self.stop.is_set():
            i = self.sent % 3
            tx = self.chain.transfer(i, (i + 1) % 3, nonces[i], 1)
            code, _ = submit(self.nodes[self.sent % len(self.nodes)].api_url, tx)
            if code in (200, 202):
                nonces[i] += 1
                self.sent += 1
            self.stop.wait(0.02)


def pob_rounds(_bundle: GenesisBundle) -> dict[str, Any]:
    """Rounds of 400 ms (as the C&D e2e and the fault manifests run PoB)."""
    return {"consensus": {"engine": "pob", "round_ms": 400, "finality_depth": 3}}


@pytest.fixture(params=["pbft", "pob"])
def testnet(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Chain, list[NodeProcess]]]:
    """Four validators of PBFT, or of PoB (ADR 0044), whose certificate is the proposer's
    signature: there "signs" means "made a committed block"."""
    engine = request.param
    chain = make_chain(
        tmp_path / "net",
        validators=4,
        engine=engine,
        block_interval_ms=100,
        genesis_changes=pob_rounds if engine == "pob" else None,
    )
    with running_cluster(chain) as nodes:
        yield chain, nodes


def govern(chain: Chain, node: NodeProcess, nonce: int, body: UpdateValidators) -> int:
    """Submit a governance UpdateValidators; return the height that committed it."""
    tx: Transaction = sign_tx(chain.bundle.governance.key, chain.chain_id, nonce, body)
    code, answer = submit(node.api_url, tx)
    assert code in (200, 202), answer
    return int(wait_committed(node.api_url, tx.hash().hex(), timeout_s=60)["height"])


def test_a_fifth_validator_joins_signs_and_a_removed_one_never_signs_again(
    testnet: tuple[Chain, list[NodeProcess]], tmp_path: Path
) -> None:
    chain, nodes = testnet
    joiner_key = SigningKey.generate()
    joiner = joiner_config(chain, joiner_key, tmp_path / "validator-5")
    # Clients use validators that stay in the set: one removed stops receiving gossip, so what
    # it admitted would wait there (and block the sender's later nonces).
    load = Load(chain, nodes[:3])
    load.thread.start()
    try:
        joiner.start()  # outside the set: it follows, it signs nothing
        check_the_set_changes(chain, nodes, joiner, joiner_key, load)
    finally:
        load.stop.set()
        load.thread.join(timeout=10)
        joiner.terminate()


def in_force_from(
    chain: Chain, node: NodeProcess, carried: int, everyone: list[NodeProcess]
) -> int:
    """The first height of the set a change committed at ``carried`` leaves, read from the
    chain as an independent model: H + 2 on PBFT (ADR 0035); on PoB two heights above the
    block that completes a run of three blocks of consecutive rounds from the change's own
    block on (ADR 0049)."""
    if chain.bundle.genesis.consensus.engine != "pob":
        return carried + 2
    last_round, run, height = -2, 0, carried
    while run < 3:
        wait_for(lambda h=height: head(node) >= h, 120, everyone)
        found = block(node, height)
        assert found is not None, f"block {height} missing"
        round_ = int(found["header"]["round"])
        run = run + 1 if round_ == last_round + 1 else 1
        last_round, height = round_, height + 1
    return height - 1 + 2


def check_the_set_changes(
    chain: Chain, nodes: list[NodeProcess], joiner: NodeProcess, key: SigningKey, load: Load
) -> None:
    everyone = [*nodes, joiner]
    added = govern(chain, nodes[0], 0, UpdateValidators(add=(key.public_key,)))
    active = in_force_from(chain, nodes[0], added, everyone)
    wait_for(lambda: min(head(n) for n in everyone) >= active + 20, 180, everyone)
    me = key.public_key.hex()
    assert all(me not in signers(nodes[0], h) for h in range(1, active))
    # From its activation height on it signs: how many blocks pass before its first signature
    # is in a certificate depends on when its redials reach the others (its links were refused
    # until the change committed) and on whether its vote is among the quorum's first.
    seen = [active]

    def signed_since_activation() -> bool:
        top = head(nodes[0])
        for h in range(seen[0], top + 1):
            if me in signers(nodes[0], h):
                return True
        seen[0] = max(seen[0], top + 1)
        return False

    wait_for(signed_since_activation, 120, everyone)
    code, listed = http_get(f"{nodes[1].api_url}/v1/validators")
    assert code == 200
    assert me in {v["public_key"] for v in listed["validators"]}

    leaving = nodes[3]
    gone = chain.bundle.validators[3].key.public_key
    removed = govern(chain, nodes[0], 1, UpdateValidators(remove=(gone,)))
    gone_from = in_force_from(chain, nodes[0], removed, everyone)
    stay = [*nodes[:3], joiner]
    sent_before = load.sent
    wait_for(lambda: min(head(n) for n in stay) >= gone_from + 20, 180, everyone)
    assert load.sent > sent_before  # the load went on through both changes: no halt
    top = min(head(n) for n in stay)
    for h in range(gone_from, top + 1):
        assert gone.hex() not in signers(nodes[0], h), f"the removed validator signed block {h}"
    assert any(me in signers(nodes[0], h) for h in range(gone_from, top + 1))
    for h in range(1, top + 1):
        assert len({block_hash(n, h) for n in stay}) == 1, f"validators differ at height {h}"
    # The removed validator is demoted: its chain, as far as it got, is the same chain.
    for h in range(1, min(head(leaving), top) + 1):
        assert block_hash(leaving, h) == block_hash(nodes[0], h)
    for node in stay:
        code, status = http_get(f"{node.api_url}/v1/status")
        assert code == 200
        assert status["halted"] is None
    check_no_more_dials(chain, nodes, joiner, gone_from)


#: Longer than two of the longest redial pauses (NetworkTuning.backoff_max_s, 5 s): a node
#: that still dials a peer that refuses it logs a refusal within it.
QUIET_WINDOW_S = 12.0


def log_lines(node: NodeProcess) -> list[dict[str, Any]]:
    lines = []
    for raw in node.log.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def dial_refusals(node: NodeProcess, peer: str | None = None) -> int:
    """The dials of ``node`` that the other end refused (or that it refused itself), to
    ``peer`` only when given."""
    return sum(
        1
        for line in log_lines(node)
        if line.get("event") == "outbound link refused" and peer in (None, line.get("peer"))
    )


def check_no_more_dials(
    chain: Chain, nodes: list[NodeProcess], joiner: NodeProcess, gone_from: int
) -> None:
    """The removed validator said once that it was removed, at its first height outside the set, and
    over a window longer than two redial pauses neither it nor anyone else dials again."""
    leaving, name = nodes[3], chain.bundle.validators[3].name
    others = [*nodes[:3], joiner]
    before = (dial_refusals(leaving), [dial_refusals(n, name) for n in others])
    start = head(nodes[0])
    time.sleep(QUIET_WINDOW_S)
    assert head(nodes[0]) > start  # the chain went on meanwhile
    after = (dial_refusals(leaving), [dial_refusals(n, name) for n in others])
    assert after == before, f"dials refused before {before}, after the quiet window {after}"
    notices = [e for e in log_lines(leaving) if e.get("event") == "removed from the validator set"]
    assert len(notices) == 1, notices
    assert notices[0]["removed_at"] == gone_from


def block_hash(node: NodeProcess, height: int) -> str:
    found = block(node, height)
    assert found is not None, f"block {height} missing on {node.config.parent.name}"
    return str(found["hash"])
