"""Enhanced Proof-of-Benefit (source ch. 6): vote for the valid proposal with the highest benefit.

See consensus/epob/engine.py for the protocol as implemented (two vote steps with locks, the
quorum options and why the source's majority quorum is safe against crashes only); what it
shares with the other engines is in consensus/kernel/.
"""

from gridchain.consensus.epob.engine import EpobConfigError, EpobEngine, tie_break
from gridchain.consensus.epob.messages import (
    LockRecord,
    Precommit,
    Prevote,
    Proposal,
    ProposalClaim,
    decode_message,
)
from gridchain.consensus.kernel.guard import DoubleSignError, PersistedStateError, SigningGuard
from gridchain.consensus.kernel.messages import Decision
from gridchain.consensus.kernel.validators import quorum_size
from gridchain.consensus.kernel.verify import Verifier

__all__ = [
    "Decision",
    "DoubleSignError",
    "EpobConfigError",
    "EpobEngine",
    "LockRecord",
    "PersistedStateError",
    "Precommit",
    "Prevote",
    "Proposal",
    "ProposalClaim",
    "SigningGuard",
    "Verifier",
    "decode_message",
    "quorum_size",
    "tie_break",
]
