"""Engines and validator-set changes (ADR 0035): the set of each height comes in ChainHead.

A key outside the set of the height in flight signs nothing (it follows: it validates and
commits what a quorum of members certified); a key the head's set names votes from that
height; a member that leaves stops signing and stops being counted.  The seeded simulators
(tests/sim, scenarios ``set-changes*``) run the same engines through whole set changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from gridchain.consensus.engine import (
    Action,
    Broadcast,
    ChainHead,
    CommitBlock,
    Send,
    ValidateBlock,
)
from gridchain.consensus.epob import EpobEngine
from gridchain.consensus.pbft import PbftEngine
from gridchain.consensus.pbft.messages import make_pre_prepare
from gridchain.genesis.builder import GenesisBundle
from gridchain.protocol.block import VoteStep
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.encoding import Record
from tests.helpers import det_key, small_bundle
from tests.unit.consensus import test_epob as ep
from tests.unit.consensus import test_pbft as pb

OUTSIDER = det_key("admitted later")


@pytest.fixture(scope="module")
def chain() -> GenesisBundle:
    return small_bundle(validators=4, participants=1, engine="pbft", seed="pbft-unit")


def pbft_engine(chain: GenesisBundle, key: SigningKey = OUTSIDER) -> PbftEngine:
    return PbftEngine(
        key,
        pb.cid(chain),
        pb.validators(chain),
        block_interval_ms=pb.INTERVAL,
        view_timeout_ms=pb.TIMEOUT,
    )


def signed_by(actions: Sequence[Action], key: bytes) -> list[Record]:
    """The messages in ``actions`` that ``key`` signed (a Decision relays others' votes)."""
    out: list[Record] = []
    for a in actions:
        if isinstance(a, Broadcast | Send):
            signer = getattr(a.message, "signer", None)
            if signer == key:
                out.append(a.message)
    return out


def test_a_pbft_replica_outside_the_set_signs_nothing_and_commits_what_members_certify(
    chain: GenesisBundle,
) -> None:
    eng = pbft_engine(chain)
    head = pb.genesis_head(chain)
    actions = eng.start(head, {}, pb.T0)
    actions += eng.on_pending_work(True, pb.T0)
    block = pb.block_on(chain, head)
    pp = make_pre_prepare(pb.keys(chain)[0], pb.cid(chain), 0, block)
    actions += pb.deliver(eng, pp)
    assert ValidateBlock(block) in actions
    actions += eng.on_block_validated(block.hash(), True, pb.T0)
    for i in (1, 2, 3):
        actions += pb.deliver(eng, pb.prepare_from(chain, i, 1, 0, block.hash()))
    for i in (0, 1, 2):
        actions += pb.deliver(eng, pb.commit_from(chain, i, 1, 0, block.hash()))
    for tick in range(1, 30):  # timeouts pass: an outsider never asks for a view change
        actions += eng.on_tick(pb.T0 + tick * pb.TIMEOUT)
    commits = [a for a in actions if isinstance(a, CommitBlock)]
    assert [c.block for c in commits] == [block]
    assert signed_by(actions, OUTSIDER.public_key) == []


def test_a_pbft_replica_named_by_the_head_votes_from_that_height(chain: GenesisBundle) -> None:
    eng = pbft_engine(chain)
    members = (*pb.validators(chain), OUTSIDER.public_key)
    head = replace(pb.genesis_head(chain), validators=members)
    eng.start(head, {}, pb.T0)
    block = pb.block_on(chain, head)
    pb.deliver(eng, make_pre_prepare(pb.keys(chain)[0], pb.cid(chain), 0, block))
    actions = eng.on_block_validated(block.hash(), True, pb.T0)
    prepares = signed_by(actions, OUTSIDER.public_key)
    assert len(prepares) == 1
    rule = eng.commit_rule(block)
    assert rule.signers == frozenset(members)
    assert rule.quorum == 4  # n = 5: q = n - f = 4
    assert rule.step == VoteStep.COMMIT


def test_a_pbft_replica_that_leaves_stops_signing_and_its_votes_stop_counting(
    chain: GenesisBundle,
) -> None:
    eng = pb.engine(chain, 3)
    remaining = pb.validators(chain)[:3]
    head = replace(pb.genesis_head(chain), validators=remaining)
    eng.start(head, {}, pb.T0)
    block = pb.block_on(chain, head)
    pb.deliver(eng, make_pre_prepare(pb.keys(chain)[0], pb.cid(chain), 0, block))
    actions = eng.on_block_validated(block.hash(), True, pb.T0)
    assert signed_by(actions, pb.validators(chain)[3]) == []
    assert pb.validators(chain)[3] not in eng.commit_rule(block).signers
    # a member counts the removed key's votes no more: with validators 0..2 (q = 3), two
    # member commits and the leaver's do not decide
    member = pb.engine(chain, 1)
    member.start(head, {}, pb.T0)
    pb.deliver(member, make_pre_prepare(pb.keys(chain)[0], pb.cid(chain), 0, block))
    member.on_block_validated(block.hash(), True, pb.T0)
    out = []
    for i in (0, 3):
        out += pb.deliver(member, pb.prepare_from(chain, i, 1, 0, block.hash()))
    for i in (0, 3):
        out += pb.deliver(member, pb.commit_from(chain, i, 1, 0, block.hash()))
    assert not [a for a in out if isinstance(a, CommitBlock)]  # 0 and 1 only: two of three
    out += pb.deliver(member, pb.prepare_from(chain, 2, 1, 0, block.hash()))
    out += pb.deliver(member, pb.commit_from(chain, 2, 1, 0, block.hash()))
    assert [a.block for a in out if isinstance(a, CommitBlock)] == [block]


def test_an_epob_validator_outside_the_set_proposes_and_votes_nothing() -> None:
    eng = EpobEngine(OUTSIDER, ep.CID, ep.vals(), round_ms=ep.ROUND, block_interval_ms=ep.INTERVAL)
    actions = eng.start(ep.HEAD, {}, ep.T0)
    actions += eng.on_pending_work(True, ep.T0)
    for tick in range(1, 12):
        actions += eng.on_tick(ep.T0 + tick * ep.ROUND // 2)
    b = ep.block(1)
    actions += ep.deliver(eng, ep.proposal(1, b))
    actions += eng.on_block_validated(b.hash(), True, ep.T0 + ep.INTERVAL)
    for i in (0, 1, 2):
        actions += ep.deliver(eng, ep.prevote(i, b))
    for i in (0, 1, 2):
        actions += ep.deliver(eng, ep.precommit(i, b))
    if ValidateBlock(b) in actions:
        actions += eng.on_block_validated(b.hash(), True, ep.T0 + ep.INTERVAL)
    assert [a.block for a in actions if isinstance(a, CommitBlock)] == [b]
    assert signed_by(actions, OUTSIDER.public_key) == []


def test_an_epob_validator_switches_sets_at_the_head_the_driver_names() -> None:
    eng = ep.engine(0)
    eng.start(ep.HEAD, {}, ep.T0)
    grown = (*ep.vals(), OUTSIDER.public_key)
    h1 = ChainHead(1, ep.block(0).hash(), ep.T0, grown)
    eng.on_block_committed(h1, ep.T0 + 1)
    assert eng.n == 5
    assert eng.q == 4
    assert eng.commit_rule(ep.block(0, height=2, prev=h1.block_hash)).signers == frozenset(grown)
