"""Proof-of-Benefit (source ch. 5) for gridchain, with Streamlet-style votes for safety.

See consensus/pob/engine.py for the protocol as implemented and what it guarantees.
"""

from gridchain.consensus.kernel.guard import DoubleSignError, PersistedStateError
from gridchain.consensus.kernel.verify import Verifier
from gridchain.consensus.pob.engine import GUARD_KEY, LOCK_KEY, PobConfigError, PobEngine
from gridchain.consensus.pob.messages import (
    Announce,
    BlockMessage,
    BlockRequest,
    GuardRecord,
    LockRecord,
    decode_message,
)
from gridchain.consensus.pob.tree import BlockTree, tie_key

__all__ = [
    "GUARD_KEY",
    "LOCK_KEY",
    "Announce",
    "BlockMessage",
    "BlockRequest",
    "BlockTree",
    "DoubleSignError",
    "GuardRecord",
    "LockRecord",
    "PersistedStateError",
    "PobConfigError",
    "PobEngine",
    "Verifier",
    "decode_message",
    "tie_key",
]
