"""The one certificate check: signers, quorum, block hash, height and the engine's vote step."""

from __future__ import annotations

import dataclasses

import pytest

from gridchain.consensus.certificates import (
    CertificateError,
    CommitRule,
    check_certificate,
    genesis_commit_rule,
)
from gridchain.genesis.builder import build_genesis
from gridchain.node.runtime import make_engine
from gridchain.protocol.block import Block, Certificate, Vote, VoteStep
from gridchain.protocol.errors import SignatureError
from tests.helpers import GENESIS_TIME_MS, certify, det_key, key_factory, make_block

CID = b"\x07" * 32
KEYS = [det_key(f"cert-{i}") for i in range(4)]
RULE = CommitRule(frozenset(k.public_key for k in KEYS), 3, VoteStep.COMMIT)
BLOCK = make_block(CID, 5, b"\x01" * 32, proposer=KEYS[0].public_key)


def cert(block: Block, signers: int = 3, step: VoteStep = VoteStep.COMMIT) -> Certificate:
    vote = Vote(block.height, 0, block.hash(), int(step))
    return Certificate(vote, tuple(vote.sign(k, CID) for k in KEYS[:signers]))


def test_a_commit_quorum_for_the_block_passes() -> None:
    check_certificate(cert(BLOCK), BLOCK, RULE, CID)


def test_a_prepare_quorum_is_not_a_commit_certificate() -> None:
    with pytest.raises(CertificateError, match="prepare votes"):
        check_certificate(cert(BLOCK, step=VoteStep.PREPARE), BLOCK, RULE, CID)


def test_a_certificate_of_another_block_or_height_is_refused() -> None:
    other = make_block(CID, 5, b"\x02" * 32, proposer=KEYS[0].public_key)
    with pytest.raises(CertificateError, match="another block"):
        check_certificate(cert(other), BLOCK, RULE, CID)
    c = cert(BLOCK)
    moved = dataclasses.replace(c, vote=dataclasses.replace(c.vote, height=6))
    with pytest.raises(CertificateError, match="another height"):
        check_certificate(moved, BLOCK, RULE, CID)


def test_too_few_signers_or_an_outsider_are_refused() -> None:
    with pytest.raises(SignatureError, match="2 signatures, 3 needed"):
        check_certificate(cert(BLOCK, signers=2), BLOCK, RULE, CID)
    vote = Vote(BLOCK.height, 0, BLOCK.hash(), int(VoteStep.COMMIT))
    outsider = Certificate(vote, (*cert(BLOCK, 2).signatures, vote.sign(det_key("x"), CID)))
    with pytest.raises(SignatureError, match="non-validator"):
        check_certificate(outsider, BLOCK, RULE, CID)


# --- the commit rule from genesis alone (a gateway follows without an engine, ADR 0024) -------

ENGINE_CASES = [
    ("solo", 1, {}),
    ("pbft", 4, {}),
    ("pbft", 7, {}),
    ("pob", 4, {}),
    ("epob", 4, {}),
    ("epob", 5, {"epob_quorum": "majority"}),
]


@pytest.mark.parametrize(("engine", "n", "params"), ENGINE_CASES)
def test_the_genesis_commit_rule_is_the_engines_own(
    engine: str, n: int, params: dict[str, str]
) -> None:
    bundle = build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=n,
        participants=1,
        engine=engine,
        new_key=key_factory(f"rule-{engine}-{n}"),
        consensus_params=params,
    )
    genesis = bundle.genesis
    for proposer in bundle.validators:
        block = make_block(genesis.chain_id, 3, b"\x01" * 32, proposer=proposer.key.public_key)
        for validator in bundle.validators:
            engine_rule = make_engine(genesis, validator.key).commit_rule(block)
            assert genesis_commit_rule(genesis, block) == engine_rule


def test_a_pob_block_by_a_stranger_has_no_signer_that_could_certify_it() -> None:
    bundle = build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=4,
        participants=1,
        engine="pob",
        new_key=key_factory("rule-pob-stranger"),
    )
    stranger = det_key("stranger")
    block = make_block(bundle.genesis.chain_id, 3, b"\x01" * 32, proposer=stranger.public_key)
    rule = genesis_commit_rule(bundle.genesis, block)
    assert rule.signers == frozenset()
    certificate = certify(block, [stranger], bundle.genesis.chain_id)
    with pytest.raises(SignatureError, match="non-validator"):
        check_certificate(certificate, block, rule, bundle.genesis.chain_id)
