"""The view-change rules: which block a new view must carry, and checking that it does.

Safety argument in one paragraph (docs/adr/0007-pbft.md has the long form).  If a block B was
committed at height h in view v, q validators sent commit votes, so at least q - f >= f + 1
honest ones hold a prepared certificate for B at view v (their lock) and will only prepare B
in later views at h, unless a valid new view tells them otherwise.  A new view for a later view
carries q view changes for height h; any q validators include at least one of those honest
ones (q + (q - f) > n), which reports a certificate of view >= v.  No certificate for another
block can exist at a view >= v (it would need q prepares, but only n - (q - f) < q validators
are not locked on B), so the certificate with the highest view names B, and the new view must
re-propose B unchanged.  Replicas recompute that choice from the signed view changes instead
of trusting the new primary.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridchain.consensus.kernel.validators import ValidatorSet
from gridchain.consensus.kernel.verify import SignatureCheck, certificate_signed
from gridchain.consensus.pbft.messages import NewView, ViewChange
from gridchain.protocol.block import Certificate, VoteStep
from gridchain.protocol.errors import GridchainError


class NewViewError(GridchainError):
    """A new view that does not prove the view change or carries the wrong block."""

    code = "invalid_new_view"


def highest_prepared(view_changes: Iterable[ViewChange]) -> Certificate | None:
    """The prepared certificate with the highest view (ties: the larger hash, deterministic).

    Two certificates of one view for different blocks need more than f Byzantine validators,
    so the tie-break only makes the choice well defined, it never decides safety.
    """
    best: Certificate | None = None
    for vc in view_changes:
        cert = vc.prepared
        if cert is None:
            continue
        if best is None or (cert.vote.round, cert.vote.block_hash) > (
            best.vote.round,
            best.vote.block_hash,
        ):
            best = cert
    return best


def certificate_valid(
    cert: Certificate,
    step: VoteStep,
    height: int,
    validators: ValidatorSet,
    check: SignatureCheck,
) -> bool:
    """A certificate of ``step`` votes at ``height`` that q distinct members signed."""
    vote = cert.vote
    if vote.step != step or vote.height != height:
        return False
    return certificate_signed(cert, validators, validators.q, check)


def view_change_valid(vc: ViewChange, validators: ValidatorSet, check: SignatureCheck) -> bool:
    """The view change is signed by a member and its prepared proof holds."""
    if vc.signer not in validators:
        return False
    if vc.prepared is not None:
        vote = vc.prepared.vote
        if vote.round >= vc.new_view or not certificate_valid(
            vc.prepared, VoteStep.PREPARE, vc.height, validators, check
        ):
            return False
    return check(vc.signature, vc.claim())


def check_new_view(
    nv: NewView, validators: ValidatorSet, check: SignatureCheck
) -> Certificate | None:
    """Verify ``nv`` completely; return the prepared certificate it had to follow, if any.

    Raises NewViewError naming the first rule it breaks.
    """
    signers: list[bytes] = []
    for vc in nv.view_changes:
        if vc.new_view != nv.view or vc.height != nv.height:
            raise NewViewError("a view change is for another view or height")
        if vc.signer in signers:
            raise NewViewError("two view changes from one validator")
        if not view_change_valid(vc, validators, check):
            raise NewViewError(f"the view change of {vc.signer.hex()[:16]} does not verify")
        signers.append(vc.signer)
    if len(signers) < validators.q:
        raise NewViewError(f"{len(signers)} view changes, {validators.q} needed")
    chosen = highest_prepared(nv.view_changes)
    pp = nv.pre_prepare
    if pp is None:
        if chosen is not None:
            raise NewViewError("a block was prepared but the new view re-proposes nothing")
        return None
    if pp.view != nv.view or pp.height != nv.height:
        raise NewViewError("the pre-prepare is for another view or height")
    if pp.signer != validators.primary(nv.view):
        raise NewViewError("the pre-prepare is not signed by the view's primary")
    vote = pp.vote()
    if chosen is not None and vote.block_hash != chosen.vote.block_hash:
        raise NewViewError("the new view does not re-propose the highest prepared block")
    if not check(pp.signature, vote):
        raise NewViewError("the pre-prepare's signature does not verify")
    return chosen
