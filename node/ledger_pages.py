"""Give the resident pages of the ledger's mapped table files back once the node is quiet.

Why (issue 17 item 7, ADR 0054): LevelDB reads its table files (``*.ldb``) through ``mmap``
on 64-bit systems, and every page a read or a compaction touched stays mapped, so it counts in
the validator's resident size, until LevelDB closes the table (it keeps up to
``max_open_files`` tables open per database).  The history LevelDB only grows (ADR 0050), and
serving old blocks (a gateway or a peer following from genesis, the API) touches all of it, so
the mapped part of RSS grew with the chain's age: 13 MiB after one played day, 32 MiB after two,
up to ``open tables x 2 MiB`` per database.  Those pages are clean copies of the files:
``madvise(MADV_PAGEOUT)`` on their ranges unmaps them and lets the kernel reclaim them, as it
would under memory pressure; a later read faults the page in again from the file.  Nothing a
read returns changes, only where its bytes come from.

Why ``MADV_PAGEOUT`` and not ``MADV_DONTNEED``: the ranges are read from ``/proc/self/maps``
while LevelDB's compaction thread may close a table and the C library map something else at
the same address; ``MADV_DONTNEED`` on an anonymous mapping would zero it, ``MADV_PAGEOUT``
never loses data (anonymous memory is only swapped, if there is swap).  On a kernel without it
(before Linux 5.4) or a C library without ``madvise``, nothing happens.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final

from gridchain.node.libc import c_function

#: linux/mman.h: reclaim the given pages (Linux 5.4 and later).
MADV_PAGEOUT: Final = 21
#: The suffix of LevelDB's table files.
TABLE_SUFFIX: Final = ".ldb"

#: madvise(start, length, advice) -> 0 or -1 (errno set).
Madvise = Callable[[int, int, int], int]


def table_ranges(maps: str, directories: Iterable[Path]) -> list[tuple[int, int]]:
    """The address ranges, ``(start, end)``, of the table files of ``directories`` (their own
    ``*.ldb`` files, not those of a directory inside them) in a ``/proc/PID/maps`` text."""
    wanted = {str(d) for d in directories}
    out = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6:
            continue
        path = fields[5]
        if not path.endswith(TABLE_SUFFIX) or path.rsplit("/", 1)[0] not in wanted:
            continue
        start, end = (int(part, 16) for part in fields[0].split("-"))
        out.append((start, end))
    return out


def libc_madvise() -> Madvise | None:
    """The C library's ``madvise`` (errno kept), or None where there is none."""
    advise = c_function("madvise")
    if advise is None:
        return None
    advise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    advise.restype = ctypes.c_int
    return lambda start, length, advice: int(advise(start, length, advice))


class TablePages:
    """Pages out the mapped table files of the ledger's LevelDBs on :meth:`release`."""

    def __init__(
        self,
        directories: Sequence[Path],
        madvise: Madvise | None,
        read_maps: Callable[[], str] = lambda: Path("/proc/self/maps").read_text(),
    ) -> None:
        self._directories = tuple(d.resolve() for d in directories)
        self._madvise = madvise
        self._read_maps = read_maps
        #: ranges advised so far (for tests and the curious)
        self.released = 0

    @property
    def enabled(self) -> bool:
        return self._madvise is not None

    def release(self) -> int:
        """Advise the kernel to reclaim every mapped table page of the ledger; returns how many
        ranges were advised.  A range LevelDB unmapped meanwhile is skipped (ENOMEM); a kernel
        that does not know the advice (EINVAL) turns this off for good."""
        if self._madvise is None:
            return 0
        try:
            maps = self._read_maps()
        except OSError:  # no /proc (another system): nothing to do
            self._madvise = None
            return 0
        advised = 0
        for start, end in table_ranges(maps, self._directories):
            if self._madvise(start, end - start, MADV_PAGEOUT) == 0:
                advised += 1
            elif ctypes.get_errno() == errno.EINVAL:
                self._madvise = None
                break
        self.released += advised
        return advised
