from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import Chain, NodeProcess, make_chain, node_for


@pytest.fixture
def solo_chain(tmp_path: Path) -> Chain:
    return make_chain(tmp_path / "chain", block_interval_ms=50)


@pytest.fixture
def solo_node(solo_chain: Chain) -> Iterator[NodeProcess]:
    node = node_for(solo_chain).start()
    yield node
    node.terminate()
