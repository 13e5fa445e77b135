"""PBFT (Castro and Liskov) for gridchain: n = 3f + 1 validators, one block height at a time.

See consensus/pbft/engine.py for the protocol as implemented and docs/adr/0007-pbft.md for the
decisions behind it; what it shares with the other engines is in consensus/kernel/.
"""

from gridchain.consensus.kernel.guard import DoubleSignError, PersistedStateError, SigningGuard
from gridchain.consensus.kernel.messages import Decision
from gridchain.consensus.kernel.validators import ValidatorSet
from gridchain.consensus.kernel.verify import Verifier
from gridchain.consensus.pbft.engine import PbftConfigError, PbftEngine
from gridchain.consensus.pbft.messages import (
    Checkpoint,
    Commit,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    decode_message,
)
from gridchain.consensus.pbft.viewchange import NewViewError, check_new_view

__all__ = [
    "Checkpoint",
    "Commit",
    "Decision",
    "DoubleSignError",
    "NewView",
    "NewViewError",
    "PbftConfigError",
    "PbftEngine",
    "PersistedStateError",
    "PrePrepare",
    "Prepare",
    "SigningGuard",
    "ValidatorSet",
    "Verifier",
    "ViewChange",
    "check_new_view",
    "decode_message",
]
