"""What several bench state tests compare against: a play made by one uninterrupted process."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridchain.bench.state import run


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of two households from the default genesis, played by one process."""
    directory = tmp_path_factory.mktemp("straight")
    run(2, 2, directory, do_replay=False)
    return directory
