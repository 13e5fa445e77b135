"""``gridchain bench soak`` on tiny settings: the shape of its report only, never its figures.

A 4-validator PBFT testnet, a small saturation burst, 15 s at 20 tx/s sampled every 5 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gridchain.bench.cluster
from gridchain.bench import soak
from tests.procs import REPO, free_port_block

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _test_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gridchain.bench.cluster, "_base_port", free_port_block)


def test_soak_reports_rss_and_open_files_per_validator_and_their_slopes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--json", "--minutes=0.25", "--rate=20", "--sample-seconds=5", "--saturation-txs=64"]
    assert soak.main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    names = ["node-1", "node-2", "node-3", "node-4"]
    assert report["engine"] == "pbft"
    assert report["rate_tx_per_s"] == 20
    assert report["rate_source"] == "--rate"
    assert report["saturation"]["submitted"] == 64
    assert len(report["samples"]) >= 2
    for sample in report["samples"]:
        assert sorted(sample["processes"]) == names
        for reading in sample["processes"].values():
            assert reading["rss_kib"] > 0
            assert 0 < reading["rss_anon_kib"] <= reading["rss_kib"]
            assert reading["open_files"] > 0
            assert reading["mempool_txs"] >= 0
    assert [s["t_s"] for s in report["samples"]] == sorted(s["t_s"] for s in report["samples"])
    assert sorted(report["slopes"]) == names
    for slope in report["slopes"].values():
        assert isinstance(slope["rss_mib_per_hour"], float)
        assert isinstance(slope["anon_mib_per_hour"], float)
        assert isinstance(slope["open_files_per_hour"], float)
    load = report["load"]
    assert load["offered"] > 0
    assert load["admitted"] + sum(load["refused"].values()) <= load["offered"]
    assert set(report["conditions"]) >= {"machine", "cpus", "python", "commit"}
    # the per-minute lines go to stderr as JSON while the run goes on
    rows = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    assert len(rows) == len(report["samples"])


def test_soak_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--minutes=0.1", "--rate=10", "--sample-seconds=3", "--saturation-txs=32"]
    assert soak.main(argv) == 0
    out = capsys.readouterr().out
    assert "offering 10 tx/s" in out
    assert "MiB/h" in out
    assert "anon MiB" in out
    assert "fds/h" in out
    assert "2nd half" in out
    assert out.count("t=") >= 2
    assert "mempools" in out
    assert '"commit"' in out


def test_sigterm_stops_the_benchmark_and_its_validators() -> None:
    """A benchmark killed with SIGTERM (``timeout``, ``kill``) stops the validators it started:
    they run in their own sessions, and before this they outlived it."""
    argv = ["soak", "--minutes=5", "--rate=10", "--sample-seconds=60", "--saturation-txs=32"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridchain", "bench", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("pids: "):
                pids = [int(part.split()[1]) for part in line[6:].split(", ")]
                break
        assert len(pids) == 4, "the benchmark ended before it started its validators"
        assert all(alive(pid) for pid in pids)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in pids), "validators outlived the benchmark"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids:  # what a failing run left behind must not load the machine
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, already exited but not reaped, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
