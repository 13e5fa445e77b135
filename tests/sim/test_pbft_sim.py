"""Seeded simulations of whole PBFT clusters (see tests/sim/cluster.py for the model).

At least 1,000 seeds per run, in chunks so pytest-xdist spreads them over workers.  Each seed
picks its scenario (a fault mix) by ``seed % len(SCENARIOS)``, so every scenario gets the same
share of seeds, n = 7 ones included.  GRIDCHAIN_SIM_SEEDS raises the count (a nightly run can
try 100,000) and GRIDCHAIN_SIM_FIRST_SEED moves the window, so new histories get explored
without ever losing the ones CI checks.  A failure names its seed and the replay command.
"""

from __future__ import annotations

import dataclasses

import pytest

from gridchain.market.sealed_outcomes import SealedStatus, get_outcome
from tests.sim.cluster import (
    SCENARIO_NAMES,
    SCENARIOS,
    Cluster,
    SimFailure,
    run_seed,
    scenario_for_seed,
)
from tests.sim.seeds import CHUNKS, SEEDS, all_seeds, chunk_seeds


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_seeded_clusters_agree_and_stay_live(chunk: int) -> None:
    for seed in chunk_seeds(chunk):
        run_seed(seed)  # raises SimFailure with the seed, a replay command and a trace


def test_every_scenario_gets_seeds_and_n7_is_among_them() -> None:
    counts = {name: 0 for name in SCENARIO_NAMES}
    for seed in all_seeds():
        counts[scenario_for_seed(seed)] += 1
    assert min(counts.values()) >= SEEDS // len(SCENARIO_NAMES)
    assert sum(c for name, c in counts.items() if SCENARIOS[name].n == 7) >= 100


def test_a_run_is_a_function_of_its_seed() -> None:
    """Replaying a seed must give the same history, or a printed seed would be worthless."""
    for seed in (3, 12):
        a = Cluster(SCENARIOS[scenario_for_seed(seed)], seed, full_trace=True)
        b = Cluster(SCENARIOS[scenario_for_seed(seed)], seed, full_trace=True)
        assert a.run() == b.run()
        assert a.render_trace() == b.render_trace()


def test_a_failure_names_its_seed_and_how_to_replay_it() -> None:
    cluster = Cluster(SCENARIOS["calm"], 42)
    cluster.run()
    with pytest.raises(SimFailure) as caught:
        cluster.fail("a staged failure")
    text = str(caught.value)
    assert "seed=42 scenario=calm" in text
    assert "python -m tests.sim.replay --seed 42 --scenario calm" in text
    assert "COMMIT h1" in text or "deliver" in text  # the event trace follows


def test_the_simulator_catches_a_broken_agreement() -> None:
    """The invariant check is live: a node committing a different block is caught at once."""
    cluster = Cluster(SCENARIOS["calm"], 7)
    cluster.run()
    node = next(n for n in cluster.nodes if n.honest)
    forged = node.chain[0].block
    header = dataclasses.replace(forged.header, timestamp_ms=forged.header.timestamp_ms + 1)
    other = dataclasses.replace(forged, header=header)
    with pytest.raises(SimFailure, match="agreement violated at height 1"):
        cluster.on_commit(node, other)


def test_replay_prints_the_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.sim.replay import main

    assert main(["--seed", "5", "--scenario", "lossy"]) == 0
    assert "seed 5 scenario lossy: ok" in capsys.readouterr().out


def test_catch_up_refuses_blocks_certified_by_prepare_votes() -> None:
    """A Byzantine peer serves catch-up with blocks and certificates made of a quorum of
    prepare signatures (overheard on the wire; a prepared block need not ever commit).  The
    nodes must refuse every one (the run's invariants check that what an honest node commits
    is certified by commit votes, and agreement) and still catch up from honest peers."""
    served = 0
    for seed in range(12):
        cluster = Cluster(SCENARIOS["forged-catch-up"], seed)
        cluster.run()
        served += cluster.forged_served
    assert served > 0  # the liar really was asked, and really lied


def test_the_simulated_validators_open_sealed_transfers_alike() -> None:
    """Every SEALED_EVERY-th transfer of the fixture is sealed; each simulated validator opens
    it with its own key (the same Application code as a node), and the runs above check they
    agree.  Here: sealed transfers do get committed, and applied, not refused."""
    cluster = Cluster(SCENARIOS["calm"], 0)
    cluster.run()
    for node in cluster.nodes:
        sealed = [tx for b in node.chain for tx in b.block.txs if tx.kind == "SealedTx"]
        assert sealed
        for tx in sealed:
            outcome = get_outcome(node.state, tx.sender_address, tx.hash())
            assert outcome is not None
            assert outcome.status == SealedStatus.APPLIED
