"""A quiet validator gives back the ledger's mapped table pages; the history keeps few tables
open; the validator's start loads no numpy (ADR 0054)."""

from __future__ import annotations

import ctypes
import errno
import subprocess
import sys
from pathlib import Path
from typing import Any

import plyvel
import pytest

from gridchain.node import heap_trim, store
from gridchain.node.ledger_pages import MADV_PAGEOUT, TablePages, libc_madvise, table_ranges
from gridchain.node.store import Store

MAPS = """\
7f0000000000-7f0000200000 r--s 00000000 08:01 11 /data/000005.ldb
7f0000200000-7f0000300000 r--s 00000000 08:01 12 /data/history/000007.ldb
7f0000300000-7f0000301000 r--s 00000000 08:01 13 /data/history/LOG
7f0000400000-7f0000500000 rw-p 00000000 00:00 0
7f0000500000-7f0000600000 r-xp 00000000 08:01 14 /usr/lib/libleveldb.so.1
7f0000600000-7f0000700000 r--s 00000000 08:01 15 /elsewhere/000009.ldb
7f0000700000-7f0000800000 r--s 00000000 08:01 16 /data/with space/000010.ldb
"""


def test_only_the_named_directories_own_tables_are_found() -> None:
    assert table_ranges(MAPS, [Path("/data/history")]) == [(0x7F0000200000, 0x7F0000300000)]
    # the live directory's own tables, not those of history/ inside it
    assert table_ranges(MAPS, [Path("/data")]) == [(0x7F0000000000, 0x7F0000200000)]
    assert table_ranges(MAPS, [Path("/data/with space")]) == [(0x7F0000700000, 0x7F0000800000)]
    assert table_ranges(MAPS, [Path("/nowhere")]) == []


def test_release_pages_out_every_range_and_skips_one_unmapped_meanwhile() -> None:
    calls: list[tuple[int, int, int]] = []

    def madvise(start: int, length: int, advice: int) -> int:
        calls.append((start, length, advice))
        if start == 0x7F0000200000:  # LevelDB closed this table after the maps were read
            ctypes.set_errno(errno.ENOMEM)
            return -1
        return 0

    pages = TablePages([Path("/data"), Path("/data/history")], madvise, read_maps=lambda: MAPS)
    assert pages.release() == 1
    assert calls == [
        (0x7F0000000000, 0x200000, MADV_PAGEOUT),
        (0x7F0000200000, 0x100000, MADV_PAGEOUT),
    ]
    assert pages.enabled  # ENOMEM is a race, not a missing feature
    assert pages.release() == 1


def test_a_kernel_without_the_advice_turns_it_off() -> None:
    calls: list[int] = []

    def madvise(start: int, length: int, advice: int) -> int:
        calls.append(start)
        ctypes.set_errno(errno.EINVAL)
        return -1

    pages = TablePages([Path("/data"), Path("/data/history")], madvise, read_maps=lambda: MAPS)
    assert pages.release() == 0
    assert calls == [0x7F0000000000]  # stopped at the first refusal
    assert not pages.enabled
    assert pages.release() == 0
    assert calls == [0x7F0000000000]


def test_no_proc_maps_means_nothing_to_do() -> None:
    def no_maps() -> str:
        raise FileNotFoundError("/proc/self/maps")

    pages = TablePages([Path("/data")], lambda *_: 0, read_maps=no_maps)
    assert pages.release() == 0
    assert not pages.enabled


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
def test_a_real_ledger_has_its_tables_mapped_and_released(tmp_path: Path) -> None:
    """The wiring with LevelDB itself: after reads, the store's tables are mapped and found."""
    ledger = Store(tmp_path / "data")
    try:
        for db in (ledger._db, ledger._history):
            for i in range(2000):
                db.put(b"x%06d" % i, bytes(200))
            db.compact_range()  # tables on disk (.ldb), read back below through mmap
            assert sum(1 for _ in db.iterator()) == 2000
        dirs = [ledger.path, ledger.history_path]
        maps = Path("/proc/self/maps").read_text()
        assert table_ranges(maps, [ledger.path.resolve()])
        assert table_ranges(maps, [ledger.history_path.resolve()])
        advised: list[int] = []
        real = libc_madvise()
        assert real is not None

        def counting(start: int, length: int, advice: int) -> int:
            advised.append(start)
            return real(start, length, advice)

        pages = TablePages(dirs, counting)
        released = pages.release()
        assert len(advised) >= 2
        if pages.enabled:  # a kernel with MADV_PAGEOUT (Linux 5.4+)
            assert released == len(advised)
        # the pages come back from the files: every value reads as before
        assert sum(1 for _ in ledger._history.iterator()) == 2000
        assert ledger._db.get(b"x001999") == bytes(200)
    finally:
        ledger.close()


def test_a_quiet_node_trims_the_heap_and_releases_the_tables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    done: list[str] = []
    monkeypatch.setattr(heap_trim, "libc_trim", lambda: lambda: done.append("trim"))

    def madvise(start: int, length: int, advice: int) -> int:
        done.append("madvise")
        return 0

    monkeypatch.setattr(heap_trim, "libc_madvise", lambda: madvise)
    (tmp_path / "000001.ldb").write_bytes(b"")
    at_rest = heap_trim.trim_at_rest(tmp_path)
    assert at_rest is not None
    at_rest()
    assert done[0] == "trim"  # the tables' ranges depend on what is mapped: maybe none here
    monkeypatch.setattr(heap_trim, "libc_madvise", lambda: None)
    assert heap_trim.trim_at_rest(tmp_path) is not None  # malloc_trim alone


def test_each_leveldb_is_opened_with_its_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    opened: dict[str, dict[str, Any]] = {}
    real = plyvel.DB

    def recording(path: str, **options: Any) -> Any:
        opened[Path(path).name] = options
        return real(path, **options)

    monkeypatch.setattr(plyvel, "DB", recording)
    Store(tmp_path / "data").close()
    assert opened["data"]["max_open_files"] == store.LIVE_MAX_OPEN_FILES
    assert opened["history"]["max_open_files"] == store.HISTORY_MAX_OPEN_FILES
    assert opened["history"]["lru_cache_size"] == 2 << 20
    # LevelDB's floor is 74 files per database; both stay within the ledger's budget
    assert max(74, store.LIVE_MAX_OPEN_FILES) + max(74, store.HISTORY_MAX_OPEN_FILES) <= (
        store.LEDGER_MAX_OPEN_FILES
    )


def test_the_validator_starts_without_numpy() -> None:
    """numpy (and the planner's scipy and clarabel) load with the first plan or load figures
    that need them, not with the validator (ADR 0054)."""
    code = (
        "import sys\n"
        "import gridchain.cli, gridchain.node.server, gridchain.node.cli\n"
        "import gridchain.market.cd_planner, gridchain.node.operator_stats\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'scipy', "
        "'clarabel')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
