"""``faults.clock_offset_ms``: a validator's clock moved for fault tests, refused off testnets.

Why: the fault runner skews real validator processes' clocks (tests/faults/ci-network.toml)
through a documented setting rather than LD_PRELOAD or a test-only code path; the one risk
of such a setting is an operator leaving it on a production chain, so the node refuses it
unless the genesis chain name says ``testnet`` (ADR 0022).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gridchain.genesis.builder import GenesisBundle
from gridchain.node.config import (
    ConfigError,
    check_faults_allowed,
    is_testnet_name,
    load_config,
)
from gridchain.node.runtime import Node, now_ms, skewed_clock
from tests.procs import make_chain


@pytest.mark.parametrize(
    ("name", "testnet"),
    [
        ("gridchain-testnet", True),
        ("gridchain-faults-testnet", True),
        ("Community_Testnet_2", True),
        ("gridchain-it", False),
        ("testnets-are-not-this", False),
        ("gridchain", False),
    ],
)
def test_testnet_names(name: str, testnet: bool) -> None:
    assert is_testnet_name(name) is testnet


def test_offset_refused_on_a_chain_that_is_not_a_testnet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = make_chain(tmp_path / "chain")  # chain name gridchain-it
    monkeypatch.setenv("GRIDCHAIN_FAULTS__CLOCK_OFFSET_MS", "1500")
    config = load_config(chain.config_path())
    assert config.faults.clock_offset_ms == 1500
    with pytest.raises(ConfigError, match=r"faults\.clock_offset_ms = 1500 .*'gridchain-it'"):
        Node(config)
    # nothing was opened: the ledger directory can be used at once by a node without it
    monkeypatch.delenv("GRIDCHAIN_FAULTS__CLOCK_OFFSET_MS")
    Node(load_config(chain.config_path())).store.close()


def test_zero_offset_is_allowed_anywhere(tmp_path: Path) -> None:
    chain = make_chain(tmp_path / "chain")
    check_faults_allowed(load_config(chain.config_path()), "gridchain-it")


def _testnet(bundle: GenesisBundle) -> dict[str, str]:
    return {"chain_name": "gridchain-it-testnet"}


def test_a_testnet_node_reads_the_skewed_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = make_chain(tmp_path / "chain", genesis_changes=_testnet)
    monkeypatch.setenv("GRIDCHAIN_FAULTS__CLOCK_OFFSET_MS", "-600000")
    before = now_ms()
    node = Node(load_config(chain.config_path()))
    try:
        assert node.clock() <= now_ms() - 600_000
        assert node.clock() >= before - 600_000
        # the mempool's context (the next block's timestamp) reads the same clock
        assert node.driver.next_context(node.clock()).timestamp_ms >= before - 600_000
    finally:
        node.store.close()


def test_out_of_range_offset_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = make_chain(tmp_path / "chain")
    monkeypatch.setenv("GRIDCHAIN_FAULTS__CLOCK_OFFSET_MS", str(2 * 3_600_000))
    with pytest.raises(ConfigError, match=r"faults\.clock_offset_ms"):
        load_config(chain.config_path())


def test_skewed_clock() -> None:
    assert skewed_clock(0) is now_ms
    before = time.time_ns() // 1_000_000
    assert skewed_clock(5000)() >= before + 5000
