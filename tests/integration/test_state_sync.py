"""State sync with real processes (issue 17 item 6, ADR 0039).

Three of four PBFT validators hold a chain of thousands of blocks (built ahead of time by
tests/certified_ledger.py through the real driver and copied to their ledgers) and keep
committing; the fourth genesis validator starts with an empty ledger.  It must install a
certified snapshot of the live state instead of replaying every block, reach the others'
state root, and then vote: once one of the three is stopped, PBFT's quorum of three out of
four is only met with the joiner's commit votes.

``GRIDCHAIN_STATE_SYNC_BLOCKS`` sets the chain's length (1,500 by default) and
``GRIDCHAIN_STATE_SYNC_MEMBERS`` the participants its first blocks register (500 by default,
a state entry each); the figure in docs/state.md was measured with 10,000 and 10,000.
The times are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.certified_ledger import build_certified_ledger
from tests.procs import (
    NodeProcess,
    http_get,
    make_chain,
    node_for,
    submit,
    wait_committed,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("state_sync")]

BLOCKS = int(os.environ.get("GRIDCHAIN_STATE_SYNC_BLOCKS", "1500"))
#: Participants the chain registers in its first blocks (a state entry each).
MEMBERS = int(os.environ.get("GRIDCHAIN_STATE_SYNC_MEMBERS", "500"))
N = 4


def _status(node: NodeProcess) -> dict[str, Any]:
    code, body = http_get(node.api_url + "/v1/status")
    return body if code == 200 and isinstance(body, dict) else {}


def _height(node: NodeProcess) -> int:
    return int(_status(node).get("height", 0))


def _block(node: NodeProcess, height: int) -> dict[str, Any]:
    code, body = http_get(f"{node.api_url}/v1/blocks/{height}")
    assert code == 200, body
    assert isinstance(body, dict)
    return body


def _events(node: NodeProcess) -> list[dict[str, Any]]:
    out = []
    for line in node.log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def _at(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00")).timestamp()


@pytest.mark.timeout(900)  # building the chain takes minutes on a loaded machine
def test_a_validator_joins_a_long_chain_from_a_certified_snapshot_and_votes(
    tmp_path: Path,
) -> None:
    chain = make_chain(
        tmp_path / "chain",
        validators=N,
        engine="pbft",
        block_interval_ms=200,
        genesis_age_ms=BLOCKS + 600_000,
        empty_blocks=True,
    )
    data = [chain.config_path(i).parent / "data" for i in range(N)]
    genesis_doc = (chain.directory / "genesis.json").read_bytes()
    built = time.perf_counter()
    build_certified_ledger(
        chain.bundle, genesis_doc, data[0], BLOCKS, signers=N - 1, registrations=MEMBERS
    )
    print(
        f"\nbuilt {BLOCKS} certified blocks ({MEMBERS} registrations) in "
        f"{time.perf_counter() - built:.1f} s"
    )
    for i in (1, 2):
        shutil.copytree(data[0], data[i])
    nodes = [node_for(chain, i) for i in range(N)]
    joiner = nodes[3]
    joiner.env = {"GRIDCHAIN_STATE_SYNC__MIN_GAP_BLOCKS": "100"}
    try:
        for node in nodes[:3]:
            node.start(wait=False)
        for node in nodes[:3]:
            node.wait_healthy()
        wait_for(lambda: all(_height(n) > BLOCKS + 2 for n in nodes[:3]), 60, nodes[:3])

        started_wall = time.time()
        joiner.start(wait=False)
        joiner.wait_healthy(timeout_s=120)
        wait_for(lambda: _height(joiner) >= _height(nodes[1]) - 1, 60, nodes)
        installed = [e for e in _events(joiner) if e.get("event") == "state snapshot installed"]
        assert len(installed) == 1, joiner.log_tail()
        base = int(installed[0]["height"])
        assert base >= BLOCKS
        assert int(installed[0]["entries"]) > MEMBERS
        # The snapshot's root is the one the others' block at that height certifies.
        assert installed[0]["state_root"] == _block(nodes[1], base)["header"]["state_root"]

        # Block history before the snapshot is not stored, and the API says so.
        code, body = http_get(joiner.api_url + "/v1/blocks/1")
        assert code == 404
        assert "state snapshot" in json.dumps(body)

        # With one of the three original validators stopped, a commit needs the joiner's vote
        # (a transaction gives the others work, so they change view if the stopped one was
        # the primary: an idle PBFT chain does not).
        nodes[0].terminate()
        status, body = submit(nodes[1].api_url, chain.transfer(0, 1, 0, 5))
        assert status == 202, body
        for node in nodes[1:]:
            committed = wait_committed(node.api_url, body["hash"], timeout_s=90)
        height = int(committed["height"])
        mine, theirs = _block(joiner, height), _block(nodes[1], height)
        assert mine["hash"] == theirs["hash"]
        assert mine["header"]["state_root"] == theirs["header"]["state_root"]

        voted = [
            e
            for e in _events(joiner)
            if e.get("event") == "block committed" and e.get("fetched") is False
        ]
        assert voted, joiner.log_tail()
        print(
            f"joiner: snapshot at height {base} ({installed[0]['entries']} entries) installed "
            f"{_at(installed[0]) - started_wall:.1f} s after its start "
            f"(fetch + verify {installed[0]['seconds']} s); first block committed by "
            f"consensus (height {voted[0]['height']}) {_at(voted[0]) - started_wall:.1f} s "
            f"after its start; root at height {height} equals validator-2's"
        )
    finally:
        for node in nodes:
            if node.proc is not None:
                node.terminate()
