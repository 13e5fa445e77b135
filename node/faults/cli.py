"""``gridchain testnet faults --manifest FILE``: run a fault manifest from the command line."""

from __future__ import annotations

import argparse
import functools
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from gridchain.node.faults.cluster import ports_taken
from gridchain.node.faults.manifest import load_manifest
from gridchain.node.faults.runner import RunReport, run_manifest


def _free_base(count: int) -> int:
    """A base port below the usual ephemeral range whose block of ``count`` ports is free."""
    rng = random.Random()  # noqa: S311 - a port, not a secret
    for _ in range(1000):
        base = rng.randrange(10_000, 20_000 - count)
        if not ports_taken("127.0.0.1", range(base, base + count)):
            return base
    raise SystemExit("no free block of ports between 10000 and 20000")


def _run(args: argparse.Namespace) -> int:
    path = Path(args.manifest)
    manifest = load_manifest(path)
    engines = args.engine or list(manifest.engines)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="gridchain-faults-"))
    reports: list[RunReport] = []
    for engine in engines:
        directory = root / engine
        if directory.exists() and any(directory.iterdir()):
            print(f"{directory} is not empty; choose another --dir", file=sys.stderr)
            return 2
        count = 2 * manifest.chain.validators
        base = args.base_port if args.base_port is not None else _free_base(count)
        echo = _quiet if args.json else functools.partial(_echo, engine)
        report = run_manifest(
            manifest, path, engine, directory=directory, base_port=base, seed=args.seed, out=echo
        )
        reports.append(report)
        if not args.json:
            print(report.text(timeline=False))
    if args.json:
        print(json.dumps([_as_json(r) for r in reports], indent=2))
    return 0 if all(r.ok for r in reports) else 1


def _quiet(line: str) -> None:
    """Progress lines are left out of --json output."""


def _echo(engine: str, line: str) -> None:
    print(f"[{engine}] {line}", flush=True)


def _as_json(r: RunReport) -> dict[str, Any]:
    return {
        "manifest": str(r.manifest),
        "engine": r.engine,
        "seed": r.seed,
        "ok": r.ok,
        "error": r.error,
        "failures": [{"check": f.check, "message": f.message} for f in r.failures],
        "figures": r.figures,
        "timeline": r.timeline,
        "directory": str(r.directory),
        "replay": r.replay,
    }


def add_parser(tsub: Any) -> None:
    p = tsub.add_parser(
        "faults", help="run a fault manifest: a testnet under load, perturbations, checks"
    )
    p.add_argument("--manifest", required=True, help="the manifest TOML (docs/faults.md)")
    p.add_argument(
        "--engine",
        action="append",
        choices=["pbft", "pob", "epob"],
        help="run only this engine (repeatable; default: the manifest's engines)",
    )
    p.add_argument("--seed", type=int, default=None, help="override the manifest's seed")
    p.add_argument("--dir", default=None, help="where the testnets go (default: a new temp dir)")
    p.add_argument(
        "--base-port",
        type=int,
        default=None,
        help="first API port (peer ports follow); default: a free block below 20000",
    )
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.set_defaults(handler=_run)
