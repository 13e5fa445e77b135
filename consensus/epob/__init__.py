"""Enhanced Proof-of-Benefit (source ch. 6): vote for the valid proposal with the highest benefit.

See consensus/epob/engine.py for the protocol as implemented (two vote steps with locks, the
quorum options and why the source's majority quorum is safe against crashes only).
"""

from gridchain.consensus.epob.engine import (
    EpobConfigError,
    EpobEngine,
    Verifier,
    quorum_size,
    tie_break,
)
from gridchain.consensus.epob.guard import DoubleSignError, PersistedStateError, SigningGuard
from gridchain.consensus.epob.messages import (
    Decision,
    LockRecord,
    Precommit,
    Prevote,
    Proposal,
    ProposalClaim,
    decode_message,
)

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
