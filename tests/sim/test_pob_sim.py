"""Seeded simulations of whole PoB clusters (see tests/sim/pob_cluster.py for the model).

At least 1,000 seeds per run, in chunks so pytest-xdist spreads them over workers.  Each seed
picks its scenario (a fault mix) by ``seed % len(POB_SCENARIOS)``, so every scenario gets the
same share of seeds, n = 7 ones included.  GRIDCHAIN_SIM_SEEDS raises the count and
GRIDCHAIN_SIM_FIRST_SEED moves the window, as for PBFT.  A failure names its seed and the
replay command (``python -m tests.sim.pob_cluster --seed N --scenario S``).
"""

from __future__ import annotations

import dataclasses

import pytest

from gridchain.consensus.pob.messages import make_announce
from tests.sim.cluster import SimFailure
from tests.sim.pob_cluster import (
    LOADED_SCENARIOS,
    POB_SCENARIO_NAMES,
    POB_SCENARIOS,
    PobCluster,
    main,
    pob_scenario_for_seed,
    run_pob_seed,
)
from tests.sim.seeds import CHUNKS, SEEDS, all_seeds, chunk_seeds


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_seeded_pob_clusters_agree_and_stay_live(chunk: int) -> None:
    for seed in chunk_seeds(chunk):
        run_pob_seed(seed)  # raises SimFailure with the seed, a replay command and a trace


def test_every_scenario_gets_seeds_and_n7_is_among_them() -> None:
    counts = dict.fromkeys(POB_SCENARIO_NAMES, 0)
    for seed in all_seeds():
        counts[pob_scenario_for_seed(seed)] += 1
    assert min(counts.values()) >= SEEDS // len(POB_SCENARIO_NAMES)
    assert sum(c for name, c in counts.items() if POB_SCENARIOS[name].n == 7) >= 100


def test_clocks_ahead_and_behind_by_most_of_a_round_stay_live() -> None:
    """tests/faults/ci-network.toml's clocks (one validator 300 ms ahead, one 300 ms behind,
    400 ms rounds), with loss, partitions that heal, and crashes: every seed commits.  With
    rounds on each validator's own clock alone, the validator ahead voted before the last
    round's block existed and the one behind announced after the others' window, so the
    votes split and seeds 3 and 5 of "skewed-clocks" stalled for good."""
    for name in ("skewed-clocks", "skewed-partitions", "skewed-crashes", "skewed-n7-crashes"):
        for seed in range(8):
            run_pob_seed(seed, name)


def test_overlapping_rounds_under_a_loaded_mempool_carry_new_transactions() -> None:
    """ADR 0045: with a backlog in the pool (LOADED_SCENARIOS, one of them with clocks 300 ms
    ahead and behind and a crash), validators build the next round's candidate during the
    round before and announce it at the round's start, and a block built on its pending
    parent of the round before is full of new transactions.  Before, the pool was reaped up to
    the block limit first and the parent's transactions removed after: the child of a full
    pending block took the parent's transactions back and carried nothing new."""
    full_pairs = 0
    for name in LOADED_SCENARIOS:
        for seed in range(4):
            cluster = PobCluster(POB_SCENARIOS[name], seed)
            cluster.run()  # agreement, audits and liveness as in every seeded run
            full_pairs += cluster.full_blocks_on_full_parents()
            ahead = [
                int(n.engine.status()["candidates_ahead"])
                for n in cluster.nodes
                if n.honest and n.engine is not None
            ]
            assert sum(ahead) > 0, f"{name} seed {seed}: no candidate was built ahead"
    assert full_pairs > 0


def test_a_run_is_a_function_of_its_seed() -> None:
    """Replaying a seed must give the same history, or a printed seed would be worthless (the
    online scheduler's QP included: same machine, same floating-point answers)."""
    for seed in (5, 13, POB_SCENARIO_NAMES.index("online-worse-schedule")):
        name = pob_scenario_for_seed(seed)
        a = PobCluster(POB_SCENARIOS[name], seed, full_trace=True)
        b = PobCluster(POB_SCENARIOS[name], seed, full_trace=True)
        assert a.run() == b.run()
        assert a.render_trace() == b.render_trace()


def test_byzantine_scenarios_produce_evidence() -> None:
    """The faults are real: lies about benefit and equivocation are caught and reported, and
    the lies about benefit are caught on blocks that carry a schedule (a real, non-zero
    benefit), not only on empty blocks whose benefit is 0."""
    seen: dict[str, int] = {}
    on_schedules: dict[str, int] = {}
    for name in ("inflate-announce", "inflate-block", "equivocate"):
        scenario = POB_SCENARIOS[name]
        for seed in range(3):
            cluster = PobCluster(scenario, seed)
            outcome = cluster.run()
            for kind, count in outcome.evidence.items():
                seen[kind] = seen.get(kind, 0) + count
            on_schedules[name] = on_schedules.get(name, 0) + cluster.caught_on_schedules
    assert seen.get("benefit_mismatch", 0) > 0
    assert seen.get("equivocating-announce", 0) + seen.get("equivocating-block", 0) > 0
    assert on_schedules["inflate-announce"] > 0
    assert on_schedules["inflate-block"] > 0


def test_committed_blocks_decide_intervals_with_real_benefits() -> None:
    """The fixture's C&D requests make blocks decide scheduling intervals: every run commits
    some (the end-of-run check recomputes each benefit from its schedule), and the benefits
    differ, so the ranking and the fork choice by summed benefit have something to decide."""
    for name in ("calm", "partitions", "n7-crashes", "online-worse-schedule"):
        cluster = PobCluster(POB_SCENARIOS[name], 11)
        cluster.run()
        assert cluster.scheduled_commits > 0, name
        node = max((n for n in cluster.nodes if n.honest), key=lambda n: n.head.height)
        benefits = [cb.block.header.benefit for cb in node.chain if cb.block.schedule]
        assert benefits, name
        assert all(b > 0 for b in benefits), name
        assert all(cb.block.header.benefit == 0 for cb in node.chain if not cb.block.schedule)
        announced = {b for offers in cluster.candidates.values() for b in offers.values()}
        assert len(announced - {0}) >= 2, name


def test_a_worse_schedule_loses_the_ranking_to_an_honest_candidate() -> None:
    """A validator that proposes valid blocks with the least-benefit schedule meets honest
    candidates on the same parent, and never wins against a better one (the strict-ranking
    scenarios check this at every commit; here: the contests do happen, with both
    schedulers)."""
    for name in ("worse-schedule", "online-worse-schedule"):
        built = contests = lost = 0
        for seed in range(4):
            cluster = PobCluster(POB_SCENARIOS[name], seed)
            cluster.run()
            built += cluster.worse_built
            contests += cluster.contests
            lost += cluster.contests_lost_by_honest
        assert built > 0, name
        assert contests > 0, name
        assert lost == 0, name


def test_a_committed_benefit_that_differs_from_its_schedule_fails_the_run() -> None:
    """The end-of-run recomputation is live: a committed header whose benefit is not the one
    its schedule gives is caught."""
    cluster = PobCluster(POB_SCENARIOS["calm"], 2)
    cluster.run()
    node = max((n for n in cluster.nodes if n.honest), key=lambda n: n.head.height)
    index = next(i for i, cb in enumerate(node.chain) if cb.block.schedule)
    committed = node.chain[index]
    header = dataclasses.replace(committed.block.header, benefit=committed.block.header.benefit + 1)
    node.chain[index] = dataclasses.replace(
        committed, block=dataclasses.replace(committed.block, header=header)
    )
    with pytest.raises(SimFailure, match="gives"):
        cluster.check_schedules()


def test_a_failure_names_its_seed_and_how_to_replay_it() -> None:
    cluster = PobCluster(POB_SCENARIOS["calm"], 42)
    cluster.run()
    with pytest.raises(SimFailure) as caught:
        cluster.fail("a staged failure")
    text = str(caught.value)
    assert "seed=42 scenario=calm" in text
    assert "python -m tests.sim.pob_cluster --seed 42 --scenario calm" in text
    assert "COMMIT h1" in text or "deliver" in text  # the event trace follows


def test_the_simulator_catches_a_broken_agreement() -> None:
    """The invariant check is live: a node committing a different block is caught at once."""
    cluster = PobCluster(POB_SCENARIOS["calm"], 7)
    cluster.run()
    node = next(n for n in cluster.nodes if n.honest)
    forged = node.chain[0].block
    header = dataclasses.replace(forged.header, timestamp_ms=forged.header.timestamp_ms + 1)
    other = dataclasses.replace(forged, header=header)
    with pytest.raises(SimFailure, match="agreement violated at height 1"):
        cluster.on_commit(node, other)


def test_the_simulator_catches_a_second_announce_in_a_round() -> None:
    """The signing audit is live: an honest node's second announce for a round fails the run."""
    cluster = PobCluster(POB_SCENARIOS["calm"], 3)
    cluster.run()
    (key, r), _ = next(iter(cluster.announced.items()))
    node = cluster.by_key[key]
    assert node.honest
    twin = make_announce(
        node.key,
        cluster.fixture.chain_id,
        height=1,
        round_=r,
        prev_hash=b"\x01" * 32,
        block_hash=b"\x02" * 32,
        benefit=0,
        final_height=0,
    )
    with pytest.raises(SimFailure, match="signed two announces"):
        cluster.transmit(node, None, twin)


def test_replay_prints_the_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seed", "5", "--scenario", "lossy"]) == 0
    assert "seed 5 scenario lossy: ok" in capsys.readouterr().out


def test_set_changes_admit_a_joiner_and_remove_a_validator() -> None:
    """ADR 0044: PoB takes UpdateValidators at H + 2 (it refused them before).  A fifth
    validator started outside the set makes committed blocks only from its activation, the
    removed one never again from its removal height, and every invariant holds meanwhile
    (the runs are also in the 1,000-seed rotation)."""
    for name in ("set-changes", "set-changes-crashes", "set-changes-byzantine"):
        for seed in range(3):
            cluster = PobCluster(POB_SCENARIOS[name], seed)
            cluster.run()
            assert cluster.joiner is not None
            assert cluster.joined_at is not None, name
            assert cluster.removed_at is not None, name
            node = max((n for n in cluster.nodes if n.honest), key=lambda n: n.head.height)
            proposers = [(cb.block.height, cb.block.header.proposer) for cb in node.chain]
            joiner = cluster.joiner.public_key
            assert all(h >= cluster.joined_at for h, p in proposers if p == joiner), name
            assert any(p == joiner for _, p in proposers), name
            assert all(h < cluster.removed_at for h, p in proposers if p == cluster.removed), name
