"""structlog JSON logs, one object per line, every line carrying the process's name.

Shared by every long-running gridchain process (validator, meter bridge, and the roles to come),
so it lives beside the command rather than in node/: the meter bridge must not import the node.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at each write.

    structlog keeps the file it was configured with; a process that swaps its stderr later (a
    test runner capturing output, a benchmark run in-process) would leave the logger writing to
    a closed file and every later log line would raise "I/O operation on closed file".
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(node_name: str, level: str = "info") -> structlog.stdlib.BoundLogger:
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.ERROR)),
        logger_factory=structlog.PrintLoggerFactory(file=cast("TextIO", _CurrentStderr())),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(node=node_name)
    logger: structlog.stdlib.BoundLogger = structlog.get_logger("gridchain")
    return logger
