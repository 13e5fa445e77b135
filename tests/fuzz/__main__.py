"""Fuzz one decoder with atheris: ``python -m tests.fuzz --target NAME [--time S] [--runs N]``.

The committed seed corpus (tests/fuzz/corpus/NAME) is read first, then libFuzzer mutates it,
guided by the coverage of gridchain's code.  New interesting inputs go to a scratch directory
(never into the committed corpus); a crashing input is written to ``--out`` (``crash-<sha1>``)
and the process exits non-zero.  To keep a crash as a regression, copy it into the target's
corpus as ``regress-<what>`` (tests/fuzz/test_fuzz.py then checks it is refused, typed).

CI runs every target for a fixed bound (tests/fuzz/test_fuzz.py); run longer by hand, e.g.
``python -m tests.fuzz --target frames --time 600``; ``--target all`` runs each in turn.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.fuzz import CORPUS, NAMES


def _fuzz(name: str, *, seconds: int, runs: int, seed: int, out: Path) -> None:
    """Fuzz ``name`` in this process; atheris exits the process when it is done."""
    import atheris

    with atheris.instrument_imports(include=["gridchain"]):
        from tests.fuzz import targets

    targets.install_cheap_kdf()
    target = targets.TARGETS[name]

    def one_input(data: bytes) -> None:
        targets.check(target, data)

    scratch = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    out.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.argv[0],
        str(scratch),  # libFuzzer writes new inputs into the first directory only
        str(CORPUS / name),
        f"-seed={seed}",
        f"-artifact_prefix={out}/",
        "-timeout=20",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]
    if seconds > 0:
        argv.append(f"-max_total_time={seconds}")
    if runs >= 0:
        argv.append(f"-runs={runs}")
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--target", required=True, choices=[*NAMES, "all"])
    parser.add_argument("--time", type=int, default=60, help="seconds per target (0: no bound)")
    parser.add_argument("--runs", type=int, default=-1, help="inputs per target (-1: no bound)")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed")
    parser.add_argument(
        "--out", type=Path, default=Path(".fuzz"), help="directory for crashing inputs"
    )
    args = parser.parse_args(argv)
    if args.target != "all":
        _fuzz(args.target, seconds=args.time, runs=args.runs, seed=args.seed, out=args.out)
        return 0  # not reached: atheris.Fuzz() exits
    failed = []
    for name in NAMES:  # one process each: atheris ends the process that runs it
        command = [sys.executable, "-m", "tests.fuzz", "--target", name]
        command += ["--time", str(args.time), "--runs", str(args.runs), "--seed", str(args.seed)]
        command += ["--out", str(args.out)]
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(name)
    print(f"fuzzed {len(NAMES)} targets; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
