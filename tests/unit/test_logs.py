"""The JSON logger writes to the process's stderr as it is at each line.

Why: a benchmark run in-process by a test configured the logger while pytest captured stderr;
the capture was closed after that test, and every later test of the same worker that logged
failed with "I/O operation on closed file" (CI saw it in tests/unit/node/test_state_sync.py).
"""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from gridchain.logs import configure_logging


def test_a_logger_configured_on_a_stderr_that_is_gone_writes_to_the_current_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = structlog.get_config()
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    try:
        configure_logging("logs-test", "info")
        first.close()
        second = io.StringIO()
        monkeypatch.setattr(sys, "stderr", second)
        structlog.get_logger("gridchain").info("still here", n=1)
        line = json.loads(second.getvalue().splitlines()[-1])
        assert (line["event"], line["n"], line["node"]) == ("still here", 1, "logs-test")
    finally:
        structlog.configure(**before)
        structlog.contextvars.clear_contextvars()
