"""A validator loads only what it runs: no research schedulers, no plotting library.

Why: a peer device is a small computer; importing the GA, AdBEV or matplotlib costs memory and
start-up time for nothing, and a dependency that only benchmarks need must not be able to
break a validator.  Checked in a fresh interpreter that imports everything ``gridchain node
run`` imports, with every engine genesis can name.
"""

from __future__ import annotations

import json
import subprocess
import sys

VALIDATOR_MODULES = (
    "gridchain.node.cli",
    "gridchain.node.runtime",
    "gridchain.node.server",
    "gridchain.consensus.pbft",
    "gridchain.consensus.pob",
    "gridchain.consensus.epob",
    "gridchain.market.cd_planner",
)
#: What a proposer's first C&D plan imports (market/cd_planner.py imports it then, ADR 0054):
#: part of a validator's run, so it too must bring no research scheduler.
FIRST_PLAN_MODULES = ("gridchain.market.scheduling.optimal",)
#: Loaded only by the benchmarks and the scheduling research (the ``bench`` extra).
NOT_FOR_VALIDATORS = (
    "gridchain.market.scheduling.genetic",
    "gridchain.market.scheduling.adbev",
    "gridchain.market.scheduling.registry",
    "gridchain.bench",
    "matplotlib",
)


def test_a_validator_imports_no_research_scheduler_and_no_plotting() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {VALIDATOR_MODULES + FIRST_PLAN_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=120
    )
    loaded = set(json.loads(done.stdout))
    assert set(VALIDATOR_MODULES) <= loaded  # the imports really happened
    assert "gridchain.market.scheduling.optimal" in loaded  # the online scheduler a proposer runs
    assert sorted(loaded & set(NOT_FOR_VALIDATORS)) == []
