"""PBFT (Castro and Liskov) for gridchain: n = 3f + 1 validators, one block height at a time.

See consensus/pbft/engine.py for the protocol as implemented and docs/adr/0007-pbft.md for the
decisions behind it.
"""

from gridchain.consensus.pbft.engine import PbftEngine, Verifier
from gridchain.consensus.pbft.guard import DoubleSignError, PersistedStateError, SigningGuard
from gridchain.consensus.pbft.messages import (
    Checkpoint,
    Commit,
    Decision,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    decode_message,
)
from gridchain.consensus.pbft.quorum import PbftConfigError, ValidatorSet
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
