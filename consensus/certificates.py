"""The one check of a commit certificate: who may sign, how many, which block, which step.

Why one place: the node's runtime and the simulators once each wrote this check, and they
drifted (the runtime forgot the vote step, so a quorum of PBFT *prepare* votes, which shows a
block was considered, passed for proof that it was committed).  Each engine states its rule
for a block (:meth:`consensus.engine.Engine.commit_rule`); :func:`check_certificate` applies
it, for the blocks the engine decides and for the blocks fetched from peers while catching up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gridchain.consensus.kernel.validators import quorum_size
from gridchain.consensus.kernel.verify import Verifier
from gridchain.genesis.schema import Genesis
from gridchain.protocol.block import Block, Certificate, VoteStep
from gridchain.protocol.errors import SignatureError


class CertificateError(SignatureError):
    """A certificate that does not prove its block committed under the engine's rule."""

    code = "bad_certificate"


@dataclass(frozen=True, slots=True)
class CommitRule:
    """What certifies a block at its height: ``quorum`` distinct ``signers`` voting ``step``.

    PBFT: 2f + 1 validators' commit votes; ePoB: the quorum's precommits (COMMIT votes);
    PoB: the block's own proposer (finality is by notarized depth, the certificate only proves
    who made the block); solo: the one validator.
    """

    signers: frozenset[bytes]
    quorum: int
    step: VoteStep = VoteStep.COMMIT


def check_certificate(
    certificate: Certificate,
    block: Block,
    rule: CommitRule,
    chain_id: bytes,
    verifier: Verifier | None = None,
) -> None:
    """Raise :class:`CertificateError` (or the signature check's SignatureError) unless
    ``certificate`` proves ``block`` committed under ``rule``; the cheap checks go first.
    ``verifier`` replaces protocol.crypto.verify (see Certificate.verify)."""
    vote = certificate.vote
    if vote.block_hash != block.hash():
        raise CertificateError("certificate is for another block")
    if vote.height != block.height:
        raise CertificateError("certificate is for another height")
    if vote.step != rule.step:
        raise CertificateError(
            f"certificate is made of {_step_name(vote.step)} votes, "
            f"{rule.step.name.lower()} votes needed"
        )
    certificate.verify(chain_id, rule.signers, rule.quorum, verifier)


def genesis_commit_rule(
    genesis: Genesis, block: Block, validators: Sequence[bytes] | None = None
) -> CommitRule:
    """The commit rule of ``genesis``'s engine for ``block``, without running the engine.

    For a node that follows the chain without voting (a gateway, ADR 0024): it is the rule
    each engine's ``commit_rule`` states, from ``validators``, the set of the block's height
    (the genesis set when None; ADR 0035).  PoB's rule names the block's proposer, who must
    then be a validator.
    """
    keys = genesis.validator_keys() if validators is None else tuple(validators)
    engine = genesis.consensus.engine
    if engine == "pob":
        proposer = block.header.proposer
        return CommitRule(frozenset((proposer,)) & frozenset(keys), 1)
    if engine == "solo":
        return CommitRule(frozenset(keys), 1)
    quorum = genesis.consensus.epob_quorum if engine == "epob" else "bft"
    return CommitRule(frozenset(keys), quorum_size(len(keys), quorum))


def _step_name(step: int) -> str:
    try:
        return VoteStep(step).name.lower()
    except ValueError:
        return f"step-{step}"
