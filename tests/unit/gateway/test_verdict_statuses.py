"""The gateway answers a validator's refusal code with the status the validator's API gives it,
without importing the validator: a process that imports what ``gateway run`` imports, and
nothing else, gives every code a validator declares the status the validator's own process
declares for it, and has neither the application, the runtime nor numpy loaded."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.procs import REPO

#: Declared where the gateway must not reach (the import contract forbids node.store): a
#: validator's own ledger failures, never a refusal of a transaction it was handed.
LEDGER_FAILURES = {"store_error", "wrong_chain"}

#: What the validator's process declares: code -> status of the first class declaring it.
_VALIDATOR = """
import json
import gridchain.node.server
from gridchain.protocol.errors import GridchainError
table = {}
todo = [GridchainError]
while todo:
    for sub in todo.pop(0).__subclasses__():
        table.setdefault(sub.code, sub.http_status)
        todo.append(sub)
print(json.dumps(table))
"""

#: What a gateway's process answers for those codes, and which heavy modules it loaded.
_GATEWAY = """
import json, sys
import gridchain.gateway.run
from gridchain.gateway.verdicts import status_for
codes = json.loads(sys.stdin.read())
heavy = [m for m in ("numpy", "gridchain.market.app", "gridchain.node.runtime") if m in sys.modules]
print(json.dumps({"heavy": heavy, "statuses": {c: status_for(c) for c in codes}}))
"""


def _python(code: str, stdin: str = "") -> object:
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        check=True,
        text=True,
    )
    found: object = json.loads(out.stdout)
    return found


def test_a_gateway_gives_each_refusal_the_validators_status_without_the_validator() -> None:
    validator = _python(_VALIDATOR)
    assert isinstance(validator, dict)
    assert len(validator) > 100  # the probe saw the validator's codes
    gateway = _python(_GATEWAY, json.dumps(sorted(validator)))
    assert isinstance(gateway, dict)
    assert gateway["heavy"] == []
    answered = gateway["statuses"]
    wrong = {
        code: (answered[code], status)
        for code, status in validator.items()
        if code not in LEDGER_FAILURES and answered[code] != status
    }
    assert wrong == {}
