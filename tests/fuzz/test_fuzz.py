"""The decoders under atheris, bounded for CI, and the corpus that seeds them (ADR 0023).

Each target is fuzzed in its own process (atheris ends the process it runs in) for at most
``FUZZ_SECONDS`` seconds or ``FUZZ_RUNS`` inputs after its seed corpus; the run fails if any
input raises anything but the target's typed refusals, or crashes the interpreter.  Nothing
here asserts a timing: the bound only limits how long the fuzzer looks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gridchain.protocol import keystore
from tests.fuzz import CORPUS, NAMES
from tests.fuzz import targets as fuzz_targets

#: Per target; eleven targets on two cores stay about a minute of wall time in total.
FUZZ_SECONDS = 3
FUZZ_RUNS = 200_000
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keystore target's stand-in for scrypt, for this test only (see targets.py)."""
    monkeypatch.setattr(keystore, "_derive", fuzz_targets._cheap_derive)


def _inputs(name: str, prefix: str) -> list[Path]:
    return sorted((CORPUS / name).glob(f"{prefix}-*"))


def test_every_target_has_a_corpus() -> None:
    assert set(fuzz_targets.TARGETS) == set(NAMES)
    for name in NAMES:
        assert _inputs(name, "seed"), f"tests/fuzz/corpus/{name} has no seeds"


@pytest.mark.parametrize("name", NAMES)
def test_seeds_are_valid_encodings(name: str) -> None:
    """The seeds decode without a refusal: the fuzzer starts from what the decoder accepts."""
    target = fuzz_targets.TARGETS[name]
    for path in _inputs(name, "seed"):
        target.run(path.read_bytes())


@pytest.mark.parametrize("name", NAMES)
def test_regressions_are_refused_with_typed_errors(name: str) -> None:
    """Inputs a fuzzer once crashed a decoder with (``regress-*``) now get a typed refusal."""
    target = fuzz_targets.TARGETS[name]
    for path in _inputs(name, "regress"):
        with pytest.raises(target.allowed):
            target.run(path.read_bytes())


@pytest.mark.parametrize("name", NAMES)
def test_atheris_finds_no_crash(name: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tests.fuzz", "--target", name, "--seed", "1"]
    command += ["--time", str(FUZZ_SECONDS), "--runs", str(FUZZ_RUNS), "--out", str(tmp_path)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    report = f"{name}: exit {done.returncode}, crashes {crashes}\n{done.stderr[-4000:]}"
    assert not crashes, report
    assert done.returncode == 0, report
