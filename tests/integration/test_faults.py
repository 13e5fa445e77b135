"""The fault runner's CI manifests pass for every engine, and the runner tells the truth.

Each manifest of tests/faults/ci-*.toml runs against a real four-validator testnet of each
engine it names (pbft, pob, epob): validator processes, steady transfers through the API
client, kill -9, SIGTERM restart, SIGSTOP pause, a network-namespace disconnect and clock
skew at chosen heights, then the invariant checks (same blocks everywhere, no committed
transaction lost, supply conserved, liveness after healing).  A failure prints the runner's
report: timeline, what broke (height, node, hashes), the logs and the replay command.

The runs share one xdist group: they would otherwise compete with each other for the two
cores and measure the machine instead of the chain.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from gridchain.node.faults.manifest import Manifest, load_manifest
from gridchain.node.faults.netns import netns_unusable
from gridchain.node.faults.runner import RunReport, run_manifest
from tests.procs import REPO, free_port_block

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("faults")]

CI = sorted((REPO / "tests" / "faults").glob("ci-*.toml"))
RUNS = [
    pytest.param(path, engine, id=f"{path.stem}-{engine}")
    for path in CI
    for engine in load_manifest(path).engines
]


def _run(path: Path, engine: str, tmp_path: Path, manifest: Manifest | None = None) -> RunReport:
    manifest = manifest or load_manifest(path)
    base = free_port_block(2 * manifest.chain.validators)
    return run_manifest(manifest, path, engine, directory=tmp_path / engine, base_port=base)


@pytest.mark.parametrize(("path", "engine"), RUNS)
def test_ci_manifest(path: Path, engine: str, tmp_path: Path) -> None:
    manifest = load_manifest(path)
    if manifest.needs_netns and (reason := netns_unusable()) is not None:
        pytest.skip(f"{path.name} disconnects validators: {reason}")
    report = _run(path, engine, tmp_path, manifest)
    assert report.ok, report.text()
    # the run did what the manifest says, under load
    applied = [line for line in report.timeline if "healed" in line]
    assert len(applied) == len(manifest.perturbations(engine)), report.text()
    assert report.figures["txs_committed"] > 0, report.text()


def test_a_taken_port_stops_the_run_and_says_so(tmp_path: Path) -> None:
    path = REPO / "tests" / "faults" / "ci-crash.toml"
    base = free_port_block(8)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + 1))
        squatter.listen()
        report = run_manifest(
            load_manifest(path), path, "pbft", directory=tmp_path / "pbft", base_port=base
        )
    assert not report.ok
    assert report.error is not None
    assert f"API port(s) {base + 1} on 127.0.0.1 are taken" in report.error
    assert report.failures == []  # no check is claimed for a run that did not happen
    assert "ERROR" in report.text()
    assert "replay: gridchain testnet faults --manifest" in report.text()


def _pid_of(config: Path) -> int | None:
    """The pid of the validator process this test's runner started for ``config``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\x00")
        except OSError:
            continue
        if str(config).encode() in cmdline:
            return int(entry.name)
    return None


def test_a_validator_dying_unprovoked_stops_the_run(tmp_path: Path) -> None:
    """A crash nobody injected is not absorbed as a fault: the run stops and names it."""
    path = REPO / "tests" / "faults" / "ci-crash.toml"
    config = tmp_path / "pbft" / "nodes" / "node-3" / "config.toml"
    killed: list[int] = []

    def on_line(line: str) -> None:
        if "validators up" in line:
            pid = _pid_of(config)
            assert pid is not None
            killed.append(pid)
            threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()

    manifest = load_manifest(path)
    base = free_port_block(2 * manifest.chain.validators)
    report = run_manifest(
        manifest, path, "pbft", directory=tmp_path / "pbft", base_port=base, out=on_line
    )
    assert killed, report.text()
    assert report.error is not None, report.text()
    assert f"node-3 (pid {killed[0]}) exited with code -9 although no fault stopped it" in (
        report.error
    )
    assert "PASS" not in report.text()
