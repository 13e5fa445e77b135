"""The C library's functions that the node calls outside Python, looked up in one place.

Why one place (ADR 0046, ADR 0054): a resting node gives memory back with two C calls,
``malloc_trim`` and ``madvise``.  Both come from the C library the process already has loaded
(``dlopen(NULL)``), so nothing searches for the library's file (``ctypes.util.find_library``
runs ``ldconfig`` in a subprocess), and errno is kept for a caller that reads it.  Where the C
library lacks a function (musl and macOS have no ``malloc_trim``), the lookup answers None and
the caller does without.
"""

from __future__ import annotations

import ctypes
from functools import cache
from typing import Any


@cache
def _process_c_library() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def c_function(name: str) -> Any | None:
    """The C library's function ``name`` (errno kept, ``ctypes.get_errno``), or None."""
    library = _process_c_library()
    if library is None:
        return None
    try:
        return getattr(library, name)
    except AttributeError:
        return None
