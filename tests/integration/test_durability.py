"""kill -9 a real node while transfers stream in; nothing it reported committed may be lost.

The node runs as its own process with a 50 ms block interval.  One thread submits transfers as
fast as it can; another records every block the API reports (height, hash, transactions).
After several blocks the node is killed with SIGKILL mid-stream and restarted.  Then:
every recorded block is still there with the same hash, every recorded transaction is
committed, replaying the stored blocks from genesis reproduces each block's state root and the
stored state, and the node goes on committing.
"""

from __future__ import annotations

import threading
import time

import pytest

from gridchain.genesis.schema import parse_genesis
from gridchain.market.app import Application, BlockContext
from gridchain.market.state import MerkleState
from gridchain.node.store import Store
from tests.procs import Chain, NodeProcess, http_get, node_for, submit, wait_committed

pytestmark = pytest.mark.integration


class Recorder:
    """Watches the API and remembers what it reported as committed."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.blocks: dict[int, str] = {}
        self.txs: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        seen = 0
        while not self.stop.is_set():
            status, body = http_get(self.api_url + "/v1/status", timeout=1.0)
            if status != 200:
                time.sleep(0.01)
                continue
            for height in range(seen + 1, body["height"] + 1):
                status, block = http_get(f"{self.api_url}/v1/blocks/{height}", timeout=1.0)
                if status != 200:
                    break
                self.blocks[height] = block["hash"]
                self.txs.update(tx["hash"] for tx in block["txs"])
                seen = height
            time.sleep(0.01)


def stream(chain: Chain, api_url: str, stop: threading.Event, sent: list[str]) -> None:
    nonce = 0
    while not stop.is_set():
        status, body = submit(api_url, chain.transfer(0, 1, nonce, 1 + nonce % 7))
        if status == 202:
            sent.append(body["hash"])
            nonce += 1
        elif status == 0:
            time.sleep(0.01)  # the node is down; keep trying until told to stop


def replay_and_check(chain: Chain) -> int:
    """Re-execute the stored chain from genesis; return the head height."""
    genesis = parse_genesis(chain.directory.joinpath("genesis.json").read_bytes())
    app = Application(genesis)
    state = app.genesis_state()
    store = Store(chain.config_path().parent / "data")
    try:
        head = store.head_height()
        for height in range(1, head + 1):
            committed = store.get_block(height)
            assert committed is not None, f"block {height} missing below head {head}"
            header = committed.block.header
            committed.certificate.verify(chain.chain_id, genesis.validator_keys(), 1)
            ctx = BlockContext(height, header.timestamp_ms, header.proposer)
            execution = app.execute_block(state, committed.block.txs, ctx)
            assert execution.state_root == header.state_root, f"replay diverges at {height}"
            state.apply(execution.writes)
        stored = MerkleState(dict(store.state_items()))
        assert stored.root() == state.root()
    finally:
        store.close()
    return head


def test_kill9_mid_stream_loses_nothing(solo_chain: Chain, solo_node: NodeProcess) -> None:
    recorder = Recorder(solo_node.api_url)
    stop_stream = threading.Event()
    sent: list[str] = []
    threads = [
        threading.Thread(target=recorder.run, daemon=True),
        threading.Thread(target=stream, args=(solo_chain, solo_node.api_url, stop_stream, sent)),
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(recorder.blocks) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(recorder.blocks) >= 8, solo_node.log_tail()

    solo_node.kill9()  # mid-stream: the submitter is still posting
    stop_stream.set()
    recorder.stop.set()
    for t in threads:
        t.join(timeout=10)
    reported_blocks = dict(recorder.blocks)
    reported_txs = set(recorder.txs)
    assert reported_txs, "the recorder saw committed transactions"

    head = replay_and_check(solo_chain)
    assert head >= max(reported_blocks)

    solo_node.start()
    for height, block_hash in reported_blocks.items():
        status, block = http_get(f"{solo_node.api_url}/v1/blocks/{height}")
        assert status == 200, f"reported block {height} lost"
        assert block["hash"] == block_hash, f"block {height} changed after restart"
    for tx_hash in reported_txs:
        status, body = http_get(f"{solo_node.api_url}/v1/txs/{tx_hash}")
        assert status == 200, f"reported tx {tx_hash} lost"
        assert body["status"] == "committed"

    # The node goes on committing from where it stopped.
    _, account = http_get(
        f"{solo_node.api_url}/v1/accounts/{solo_chain.bundle.participants[0].address}"
    )
    status, body = submit(solo_node.api_url, solo_chain.transfer(0, 2, account["pending_nonce"], 5))
    assert status == 202, body
    committed = wait_committed(solo_node.api_url, body["hash"])
    assert committed["height"] > head


def test_sigterm_is_clean_and_restart_resumes(solo_chain: Chain, solo_node: NodeProcess) -> None:
    status, body = submit(solo_node.api_url, solo_chain.transfer(1, 2, 0, 10))
    assert status == 202
    first = wait_committed(solo_node.api_url, body["hash"])
    assert solo_node.terminate() == 0
    assert '"node stopped"' in solo_node.log_tail()
    solo_node.start()
    status, again = http_get(f"{solo_node.api_url}/v1/txs/{body['hash']}")
    assert status == 200
    assert again["height"] == first["height"]


def test_refuses_a_ledger_of_another_chain(
    solo_chain: Chain, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A data directory bound to one genesis is refused under another, with a clear error."""
    from tests.procs import make_chain

    node = node_for(solo_chain).start()
    node.terminate()
    other = make_chain(tmp_path_factory.mktemp("other") / "chain")
    foreign = node_for(other)
    # Point the other chain's node at the first chain's ledger.
    text = foreign.config.read_text().replace(
        'data_dir = "data"', f'data_dir = "{solo_chain.config_path().parent / "data"}"'
    )
    foreign.config.write_text(text)
    foreign.start(wait=False)
    assert foreign.proc is not None
    assert foreign.proc.wait(timeout=30) != 0
    assert "belongs to chain" in foreign.log_tail()
