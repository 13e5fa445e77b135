"""The one timer the runtime keeps for an engine, armed only when the next deadline moves.

Every engine has several deadlines (propose, view or round end, retransmit, send slots) but the
runtime holds a single timer (``SetTimer`` replaces the previous one), so after each batch an
engine asks for the earliest of its deadlines, and only if that is not already armed: a batch
that changes nothing about time adds no action.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridchain.consensus.engine import Action, SetTimer


class Alarm:
    """What the runtime has armed for this engine (None: nothing, or it fired)."""

    __slots__ = ("armed",)

    def __init__(self) -> None:
        self.armed: int | None = None

    def fired(self) -> None:
        """The runtime's timer fired: whatever is due next must be armed again."""
        self.armed = None

    def arm(self, actions: list[Action], deadlines: Iterable[int | None]) -> list[Action]:
        """Append SetTimer for the earliest deadline unless it is armed already; return actions."""
        due = [t for t in deadlines if t is not None]
        if due:
            earliest = min(due)
            if earliest != self.armed:
                self.armed = earliest
                actions.append(SetTimer(earliest))
        return actions
