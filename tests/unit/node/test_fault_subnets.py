"""The fault runner's network: each run takes a /24 nobody on the host uses.

Two runs of one manifest drew the same subnet from the manifest's seed; a killed run's host link
kept its route, so the next run's requests went to the dead switch and node-1 never answered
(the CI network manifests failed for every engine on a machine with leftovers).
"""

from __future__ import annotations

import pytest

from gridchain.node.faults.netns import NetnsError, free_subnet


def test_a_used_subnet_is_never_chosen() -> None:
    used = set(range(1, 250)) - {77}
    assert {free_subnet(used) for _ in range(20)} == {77}


def test_choices_spread_over_the_free_subnets() -> None:
    assert len({free_subnet({243}) for _ in range(200)}) > 1


def test_a_host_with_every_subnet_in_use_is_told_so() -> None:
    with pytest.raises(NetnsError, match="in use"):
        free_subnet(set(range(1, 250)))
