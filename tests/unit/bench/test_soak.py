"""The arithmetic and /proc readings of ``gridchain bench soak`` (no testnet here)."""

from __future__ import annotations

import os

import pytest

from gridchain.bench.soak import (
    count_open_files,
    read_memory_kib,
    read_rss_kib,
    slope_per_hour,
    slopes,
)


def test_slope_is_per_hour_and_least_squares() -> None:
    # 1 MiB more every minute is 60 MiB per hour, whatever the noise around the line
    points = [(60.0 * i, 100.0 + i + (0.5 if i % 2 else -0.5)) for i in range(31)]
    assert slope_per_hour(points) == pytest.approx(60.0, rel=0.02)
    assert slope_per_hour([(0.0, 5.0), (3600.0, 5.0)]) == 0.0


def test_no_slope_without_two_times() -> None:
    assert slope_per_hour([]) is None
    assert slope_per_hour([(10.0, 1.0), (10.0, 2.0)]) is None


def test_reads_this_process() -> None:
    assert read_rss_kib(os.getpid()) > 0
    memory = read_memory_kib(os.getpid())
    assert memory["rss_anon_kib"] > 0
    assert memory["rss_anon_kib"] + memory["rss_file_kib"] <= memory["rss_kib"] + 64
    before = count_open_files(os.getpid())
    with open(os.devnull) as _:
        assert count_open_files(os.getpid()) == before + 1


def test_slopes_skip_a_vanished_process() -> None:
    samples = [
        {"t_s": 0.0, "processes": {"a": {"rss_kib": 1024, "open_files": 10}}},
        {"t_s": 60.0, "processes": {"a": {"rss_kib": None, "open_files": None}}},
        {"t_s": 120.0, "processes": {"a": {"rss_kib": 2048, "open_files": 12}}},
    ]
    (row,) = slopes(samples).values()
    assert row["rss_mib_first"] == 1.0
    assert row["rss_mib_last"] == 2.0
    assert row["rss_mib_per_hour"] == pytest.approx(30.0)
    assert row["open_files_per_hour"] == pytest.approx(60.0)
    assert row["rss_mib_per_hour_second_half"] is None  # one reading in the second half
    assert row["anon_mib_per_hour"] is None  # these samples carry no RssAnon
