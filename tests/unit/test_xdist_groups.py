"""The suite's ``xdist_group`` marks take effect under ``make test`` (``-n 2 --dist loadgroup``).

Tests that start real clusters share a group so that they run one after another on one worker
(the fault runs would otherwise compete for the two cores and measure the machine, and a
module's testnet fixture would be started once per worker).  pytest-xdist carries the group in
the test's node id (``...::test@group``); pytest 9.2 keeps node ids where pytest-xdist 3.8 no
longer writes, and every group was then silently ignored (pytest-xdist issue 1386), which is
why pyproject.toml keeps pytest below 9.2.  This test fails if that happens again.
"""

from __future__ import annotations

import pytest

GROUP = "xdist_group_check"

pytestmark = pytest.mark.xdist_group(GROUP)


def test_a_grouped_test_carries_its_group_to_the_scheduler(request: pytest.FixtureRequest) -> None:
    config = request.config
    if not hasattr(config, "workerinput") or not config.getoption("loadgroup", False):
        pytest.skip("groups apply only in a pytest-xdist worker under --dist loadgroup (make test)")
    assert request.node.nodeid.endswith(f"@{GROUP}"), request.node.nodeid
