"""The fault runner's invariant checks: each finds what it is for and names height, node, hash.

Why: a check that cannot fail proves nothing; these feed each check the shape of chain a real
fault would leave (a fork, a rollback after kill -9, a transaction gone, money created) and
require the failure to say where, so a CI report can be acted on without re-running.
"""

from __future__ import annotations

from gridchain.node.faults import checks
from gridchain.node.faults.checks import ChainCopy

A, B, C, X = "aa" * 32, "bb" * 32, "cc" * 32, "ff" * 32


def chain(node: str, *hashes: str, txs: dict[str, int] | None = None) -> ChainCopy:
    return ChainCopy(node, tuple(hashes), txs or {})


def test_same_blocks_passes_on_equal_prefixes() -> None:
    assert checks.same_blocks([chain("n1", A, B, C), chain("n2", A, B)]) == []


def test_same_blocks_names_the_height_nodes_and_hashes() -> None:
    failures = checks.same_blocks([chain("n1", A, B, C), chain("n2", A, X, C)])
    assert len(failures) == 1
    text = str(failures[0])
    assert "[same blocks]" in text
    assert "first at 2" in text
    assert f"n1 {B[:16]}" in text
    assert f"n2 {X[:16]}" in text


def test_a_reported_block_that_changed_or_vanished_is_a_failure() -> None:
    chains = {"n1": chain("n1", A, X), "n2": chain("n2", A)}
    observed = {("n1", 1): A, ("n1", 2): B, ("n2", 2): B}
    failures = checks.observations_kept(observed, chains)
    assert [f.check for f in failures] == ["committed blocks kept"] * 2
    assert f"n1 reported block {B[:16]} at height 2 during the run, now {X[:16]}" in str(
        failures[0]
    )
    assert "now absent (head 1)" in str(failures[1])
    assert checks.observations_kept({("n1", 1): A}, chains) == []


def test_a_committed_tx_missing_on_a_validator_is_lost() -> None:
    tx = "01" * 32
    good = chain("n1", A, B, txs={tx: 2})
    seen = {tx: (2, B, "n1")}
    assert checks.no_tx_lost(seen, {"n1": good, "n2": chain("n2", A, B, txs={tx: 2})}) == []
    # n3 has not reached height 2 yet: not judged
    assert checks.no_tx_lost(seen, {"n1": good, "n3": chain("n3", A)}) == []
    failures = checks.no_tx_lost(seen, {"n1": good, "n2": chain("n2", A, B)})
    assert len(failures) == 1
    assert f"tx {tx[:16]} was reported committed by n1 at height 2" in str(failures[0])
    assert "n2 has it nowhere" in str(failures[0])


def test_many_failures_are_counted_not_listed() -> None:
    seen = {f"{i:02x}" * 32: (1, A, "n1") for i in range(10)}
    failures = checks.no_tx_lost(seen, {"n2": chain("n2", A)})
    assert len(failures) == checks.SHOWN + 1
    assert "and 7 more" in str(failures[-1])


def test_supply_names_node_height_and_difference() -> None:
    assert checks.supply_conserved({"n1": (5, 1000), "n2": (6, 1000)}, 1000) == []
    failures = checks.supply_conserved({"n1": (5, 1000), "n2": (6, 1003)}, 1000)
    assert [str(f) for f in failures] == [
        "[supply conserved] n2 at height 6: balances sum to 1003 mc, genesis issued 1000 mc "
        "(difference +3)"
    ]


def test_a_halted_validator_fails_the_run() -> None:
    assert checks.none_halted({"n1": None}) == []
    assert str(checks.none_halted({"n1": None, "n2": "state divergence"})[0]) == (
        "[no halt] n2 halted: state divergence"
    )
