"""Seeded simulations of whole ePoB clusters (see tests/sim/epob_cluster.py for the model).

As for PBFT (test_pbft_sim.py): at least 1,000 seeds per run in chunks of 25, each seed picking
its scenario by ``seed % len(EPOB_SCENARIOS)``; GRIDCHAIN_SIM_SEEDS raises the count and
GRIDCHAIN_SIM_FIRST_SEED moves the window.  A failure names its seed and the replay command
(``python -m tests.sim.replay --engine epob --seed N --scenario NAME``).

It also demonstrates why the source's majority quorum is an option for crash-only deployments:
with n = 5, q = n // 2 + 1 = 3 and one validator that votes twice across a partition, the two
honest halves finalise different blocks, and the simulator reports the agreement violation;
the same schedule with q = 2f + 1 = 4 stays safe and live.

Every run submits C&D requests first (epob_cluster.py: short scheduling intervals, the
"uncontrolled" scheduler in the rotation, "online" in a scenario tested on its own), so blocks
decide intervals and carry non-zero benefits; a run ends only after a block with a schedule has
committed, and every committed header's benefit is recomputed.  The "worse-schedule" scenario's
Byzantine proposer offers valid blocks with a lower benefit, which honest validators must not
prefer.
"""

from __future__ import annotations

import pytest

from tests.sim.cluster import SimFailure
from tests.sim.epob_cluster import (
    ALL_SCENARIOS,
    EPOB_SCENARIO_NAMES,
    EPOB_SCENARIOS,
    EpobCluster,
    EpobNode,
    run_epob_seed,
    scenario_for_seed,
)
from tests.sim.seeds import CHUNKS, SEEDS, all_seeds, chunk_seeds


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_seeded_epob_clusters_agree_and_stay_live(chunk: int) -> None:
    for seed in chunk_seeds(chunk):
        run_epob_seed(seed)  # raises SimFailure with the seed, a replay command and a trace


def test_every_scenario_gets_seeds() -> None:
    counts = {name: 0 for name in EPOB_SCENARIO_NAMES}
    for seed in all_seeds():
        counts[scenario_for_seed(seed)] += 1
    assert min(counts.values()) >= SEEDS // len(EPOB_SCENARIO_NAMES)
    assert sum(c for name, c in counts.items() if EPOB_SCENARIOS[name].n == 7) >= 100
    assert sum(c for name, c in counts.items() if EPOB_SCENARIOS[name].quorum == "majority")


def test_a_run_is_a_function_of_its_seed() -> None:
    for seed in (6, 13):
        scenario = ALL_SCENARIOS[scenario_for_seed(seed)]
        a = EpobCluster(scenario, seed, full_trace=True)
        b = EpobCluster(scenario, seed, full_trace=True)
        assert a.run() == b.run()
        assert a.render_trace() == b.render_trace()


def test_a_failure_names_its_seed_and_how_to_replay_it() -> None:
    cluster = EpobCluster(EPOB_SCENARIOS["calm"], 42)
    cluster.run()
    with pytest.raises(SimFailure) as caught:
        cluster.fail("a staged failure")
    text = str(caught.value)
    assert "ePoB simulation failed: seed=42 scenario=calm" in text
    assert "python -m tests.sim.replay --engine epob --seed 42 --scenario calm" in text
    assert "Proposal r0 h1" in text or "Prevote" in text or "COMMIT" in text


def test_inflated_benefit_claims_are_refused_and_reported() -> None:
    """The real application check catches the claim, on blocks that carry schedules too;
    evidence names the Byzantine proposer."""
    reported = refused_with_schedule = 0
    for seed in range(3):
        cluster = EpobCluster(EPOB_SCENARIOS["inflated-benefit"], seed)
        outcome = cluster.run()
        reported += outcome.evidence.get("benefit_mismatch", 0)
        refused_with_schedule += cluster.schedule_claims_refused
    assert reported > 0
    assert refused_with_schedule > 0


@pytest.mark.parametrize("name", ["calm", "online-schedule", "partitions", "n7-mixed"])
def test_blocks_decide_intervals_with_non_zero_benefits(name: str) -> None:
    """C&D requests make committed blocks carry schedules; each benefit was recomputed."""
    for seed in range(2):
        cluster = EpobCluster(ALL_SCENARIOS[name], seed)
        cluster.run()  # fails unless a block with a schedule committed and benefits recompute
        benefits = cluster.committed_benefits
        assert cluster.scheduled_commits >= 1
        assert sum(1 for b in benefits.values() if b > 0) == cluster.scheduled_commits
        expected = "online" if name == "online-schedule" else "uncontrolled"
        assert cluster.fixture.bundle.genesis.params.scheduler == expected


def test_honest_validators_prevote_the_better_schedule() -> None:
    """A Byzantine proposer's valid but worse schedule loses to a better valid candidate: the
    run checks every eligible honest prevote against the round's best benefit, and here some
    of those rounds held a worse block next to a better one."""
    worse = outvoted = checked = 0
    for seed in range(3):
        cluster = EpobCluster(EPOB_SCENARIOS["worse-schedule"], seed)
        cluster.run()
        worse += len(cluster.worse_blocks)
        outvoted += cluster.worse_outvoted
        checked += cluster.choices_checked
    assert worse > 0
    assert outvoted > 0
    assert checked > outvoted


def test_a_prevote_for_a_worse_candidate_is_caught() -> None:
    """The choice audit itself: a prevote for the lower of two valid proposals fails the run."""
    cluster = EpobCluster(EPOB_SCENARIOS["worse-schedule"], 0)
    seen: list[tuple[int, int]] = []
    audit = cluster.audit_choice

    def lowest(node: EpobNode, height: int, round_: int, block_hash: bytes) -> None:
        engine = node.engine
        assert engine is not None
        blocks = [
            p.block
            for (r, _), p in engine._proposals.items()
            if r == round_ and engine._validated.get(engine._hash(p.block))
        ]
        if len({b.header.benefit for b in blocks}) > 1 and not seen and round_ % 2 == 0:
            seen.append((height, round_))
            block_hash = engine._hash(min(blocks, key=lambda b: b.header.benefit))
        audit(node, height, round_, block_hash)

    cluster.audit_choice = lowest  # type: ignore[method-assign]
    with pytest.raises(SimFailure, match="while a valid proposal there had"):
        cluster.run()


@pytest.mark.parametrize("seed", range(3))
def test_majority_quorum_forks_under_one_double_voter(seed: int) -> None:
    """q = n // 2 + 1 is crash-safe only: two halves of 2 share just the double voter."""
    with pytest.raises(SimFailure, match="agreement violated at height"):
        run_epob_seed(seed, "split-majority")


@pytest.mark.parametrize("seed", range(3))
def test_bft_quorum_stays_safe_under_the_same_schedule(seed: int) -> None:
    """With q = 2f + 1 = 4 neither half (2 + the double voter) decides; after the heal all do."""
    cluster = EpobCluster(ALL_SCENARIOS["split-bft"], seed)
    cluster.run()  # raises SimFailure on an agreement violation or a stall
    assert all(node.head.height >= 3 for node in cluster.nodes if node.honest)


def test_replay_prints_the_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.sim.replay import main

    assert main(["--engine", "epob", "--seed", "5", "--scenario", "lossy"]) == 0
    assert "seed 5 scenario lossy: ok" in capsys.readouterr().out
    assert main(["--engine", "epob", "--seed", "1", "--scenario", "split-majority"]) == 1
    assert "agreement violated" in capsys.readouterr().out


def test_catch_up_refuses_blocks_certified_by_prevotes() -> None:
    """A Byzantine peer serves catch-up with blocks and certificates made of a quorum of
    prevote signatures it overheard (a polka shows a block was considered, not committed).
    Every one must be refused (the run checks that honest commits carry precommit quorums,
    and agreement) while the nodes still catch up from honest peers."""
    served = 0
    for seed in range(12):
        cluster = EpobCluster(EPOB_SCENARIOS["forged-catch-up"], seed)
        cluster.run()
        served += cluster.forged_served
    assert served > 0  # the liar really was asked, and really lied
