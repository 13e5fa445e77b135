"""bench footprint's split of a process's RSS: the pages of LevelDB tables it has mapped."""

from __future__ import annotations

import os
from pathlib import Path

import plyvel

from gridchain.bench.footprint import mapped_table_kib


def test_pages_of_a_read_leveldb_table_count_as_mapped_ledger(tmp_path: Path) -> None:
    before = mapped_table_kib(os.getpid())
    db = plyvel.DB(str(tmp_path / "ledger"), create_if_missing=True)
    try:
        with db.write_batch() as batch:
            for i in range(40_000):
                batch.put(b"k%08d" % i, os.urandom(100))
        db.compact_range()  # the entries go from the log into .ldb tables
        assert any(p.suffix == ".ldb" for p in (tmp_path / "ledger").iterdir())
        assert sum(1 for _ in db.iterator()) == 40_000  # reading touches the mapped tables
        # about 4 MB of random values, which Snappy does not shrink
        assert mapped_table_kib(os.getpid()) - before >= 1_000
    finally:
        db.close()
