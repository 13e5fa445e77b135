"""The helpers of ``gridchain bench consensus``: engines x sizes, genesis sections, table."""

from __future__ import annotations

import pytest

from gridchain.bench.consensus import (
    chain_params,
    consensus_params,
    engine_available,
    format_table,
    median_run,
    pairs,
    parse_engines,
    parse_sizes,
)
from gridchain.genesis.schema import ConsensusParams


def test_every_engine_runs_every_size_and_solo_runs_one() -> None:
    assert pairs(["pbft", "pob", "epob"], [4, 16]) == [
        ("pbft", 4),
        ("pbft", 16),
        ("pob", 4),
        ("pob", 16),
        ("epob", 4),
        ("epob", 16),
    ]
    assert pairs(["solo", "pbft"], [4, 7]) == [("solo", 1), ("pbft", 4), ("pbft", 7)]


def test_engine_and_size_lists_are_checked() -> None:
    assert parse_engines("pbft, pob,pbft") == ["pbft", "pob"]
    assert parse_sizes("4,16,4") == [4, 16]
    for bad in ("", "raft", "pbft,hotstuff"):
        with pytest.raises(ValueError, match="engines"):
            parse_engines(bad)
    with pytest.raises(ValueError, match="positive"):
        parse_sizes("0,4")


def test_round_and_depth_go_to_the_engines_that_use_them() -> None:
    assert consensus_params("pob", 500, 4) == {"round_ms": 500, "finality_depth": 4}
    assert consensus_params("epob", 500, 4) == {"round_ms": 500}
    assert consensus_params("pbft", 500, 4) == {}
    # and genesis accepts them
    ConsensusParams(engine="pob", **consensus_params("pob", 500, 4))
    assert engine_available("pbft")
    assert engine_available("solo")


def test_the_table_has_a_line_per_cluster_and_names_failures() -> None:
    report = {
        "clusters": [
            {
                "engine": "pbft",
                "validators": 4,
                "committed": 400,
                "submitted": 400,
                "tx_per_s": 812.4,
                "latency_p50_ms": 150.0,
                "latency_p99_ms": 420.0,
                "bound_tx_per_s": 4000.0,
                "verify_per_s_before": 7900,
                "verify_per_s_after": 8100,
            },
            {
                "engine": "pob",
                "validators": 4,
                "error": "boom",
                "bound_tx_per_s": 4000.0,
                "verify_per_s_before": 8000,
                "verify_per_s_after": 8000,
            },
            {
                "engine": "epob",
                "validators": 16,
                "committed": 0,
                "submitted": 400,
                "tx_per_s": 0.0,
                "latency_p50_ms": None,
                "latency_p99_ms": None,
                "bound_tx_per_s": 250.0,
                "verify_per_s_before": 2100,
                "verify_per_s_after": 1900,
            },
        ]
    }
    lines = format_table(report)
    assert lines[0].split() == [
        "engine",
        "validators",
        "committed",
        "tx/s",
        "p50",
        "ms",
        "p99",
        "ms",
        "bound",
        "tx/s",
        "of",
        "bound",
        "verify/s",
        "before,",
        "after",
    ]
    assert lines[1].split() == [
        *("pbft", "4", "400/400", "812", "150", "420", "4000", "0.20", "7900,", "8100"),
    ]
    assert lines[2].split()[:2] == ["pob", "4"]
    assert lines[3].strip() == "error: boom"
    assert lines[4].split() == [
        *("epob", "16", "0/400", "0", "-", "-", "250", "0.00", "2100,", "1900"),
    ]


def _run(tx_per_s: float, bound: float) -> dict[str, object]:
    return {
        **{"engine": "pbft", "validators": 4, "committed": 300, "submitted": 300},
        **{"tx_per_s": tx_per_s, "latency_p50_ms": 100.0, "latency_p99_ms": 200.0},
        **{"bound_tx_per_s": bound, "verify_per_s_before": 1, "verify_per_s_after": 1},
    }


def test_repeated_runs_give_the_run_of_the_median_fraction_of_its_own_bound() -> None:
    # By tx/s alone the median would be 1,500; by fraction of each run's bound it is the
    # 1,400 tx/s run (0.47; the others 0.375 and 0.60).
    runs = [_run(1500, 4000), _run(1400, 3000), _run(1800, 3000)]
    row = median_run(runs)
    assert (row["tx_per_s"], row["bound_tx_per_s"]) == (1400, 3000)
    assert [r["tx_per_s"] for r in row["runs"]] == [1500, 1400, 1800]
    lines = format_table({"clusters": [row]})
    assert lines[1].split()[:8] == ["pbft", "4", "300/300", "1400", "100", "200", "3000", "0.47"]
    assert lines[2].split() == [
        *("median", "of", "3", "runs", "by", "fraction;", "tx/s", "(bound):"),
        *("1500", "(4000),", "1400", "(3000),", "1800", "(3000)"),
    ]
    # an even count: the lower of the two middle runs
    assert median_run([_run(1000, 2000), _run(900, 3000)])["tx_per_s"] == 900
    # one run is its own row
    assert "runs" not in median_run([_run(1000, 2000)])


def test_a_failed_run_among_repeated_ones_is_the_row() -> None:
    failed = {"engine": "pbft", "validators": 4, "error": "boom", "bound_tx_per_s": 10.0}
    failed |= {"verify_per_s_before": 1, "verify_per_s_after": 1}
    row = median_run([_run(1500, 4000), failed, _run(1400, 3000)])
    assert (row["error"], row["failed_runs"], row["repeat"]) == ("boom", 1, 3)
    assert format_table({"clusters": [row]})[2].strip() == "error (1 of 3 runs failed): boom"


def test_empty_blocks_follow_the_option_for_every_engine() -> None:
    assert chain_params("pob", "off") == {}
    assert chain_params("epob", "on") == {"empty_blocks": True}
    assert chain_params("pbft", "on") == {"empty_blocks": True}
