"""Give the heap's freed pages back to the operating system once the node has been quiet.

Why (issue 17 item 7, ADR 0046): CPython allocates small objects from its own arenas and
everything else through the C library's malloc.  A block's execution allocates and frees tens
of megabytes of short-lived objects (overlays, tree updates, decoded records); glibc keeps the
freed memory in its heaps for reuse, so a validator's resident size stays at the high-water
mark of its busiest block for as long as it runs, although the memory is free.  ``malloc_trim``
returns the free pages at the top and inside those heaps to the kernel.  It costs a walk over
the heap (about a millisecond here), so it runs once after the node has been quiet for
``delay_s`` following a commit, never per block, and never where the C library lacks it.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable
from pathlib import Path

from gridchain.node.ledger_pages import TablePages, libc_madvise
from gridchain.node.libc import c_function

#: Seconds without a commit, an API request or a block served to a peer before the trim.
TRIM_AFTER_QUIET_S = 2.0
#: Why a cap (ADR 0054): work that never pauses for ``TRIM_AFTER_QUIET_S`` (an API polled every
#: second, blocks every second) would postpone the trim for ever; after this long it runs
#: anyway, so a busy node trims at most about once a minute and a resting one soon after.
TRIM_POSTPONED_AT_MOST_S = 60.0


def libc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none (musl, macOS)."""
    trim = c_function("malloc_trim")
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def trim_at_rest(*ledger_dirs: Path) -> Callable[[], object] | None:
    """What a quiet node gives back (ADR 0054): the heap's free pages (``malloc_trim``) and
    the resident pages of the ledger's mapped table files in ``ledger_dirs``
    (node/ledger_pages.py); None where the C library offers neither."""
    trim = libc_trim()
    tables = TablePages(ledger_dirs, libc_madvise())
    if not tables.enabled:
        return trim

    def both() -> None:
        if trim is not None:
            trim()
        tables.release()

    return both


class QuietTrim:
    """Trims the heap once ``delay_s`` after the last :meth:`touch` (debounced)."""

    def __init__(
        self,
        trim: Callable[[], object] | None,
        delay_s: float = TRIM_AFTER_QUIET_S,
        max_wait_s: float = TRIM_POSTPONED_AT_MOST_S,
    ) -> None:
        self._trim = trim
        self._delay_s = delay_s
        self._max_wait_s = max_wait_s
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        self.trims = 0

    def touch(self) -> None:
        """Work just happened: trim once the node has been quiet for ``delay_s`` (or at the
        latest about ``max_wait_s`` after the first work it has not trimmed after)."""
        if self._trim is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # driven without an event loop (a test): nothing runs later anyway
        now = loop.time()
        if self._handle is not None:
            if now - self._armed_at >= self._max_wait_s:
                return  # postponed long enough: the pending trim runs as scheduled
            self._handle.cancel()
        else:
            self._armed_at = now
        self._handle = loop.call_later(self._delay_s, self._run)

    def _run(self) -> None:
        self._handle = None
        if self._trim is not None:
            self._trim()
            self.trims += 1

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
