"""The simple rotation of the pipeline skeleton: whose turn is it? (Pure.)

``turn`` is the value of the dealer's rotation counter after it was advanced atomically in
the database, so two workers never get the same turn.
"""

from __future__ import annotations

from collections.abc import Sequence


def pick_by_turn(candidates: Sequence[str], turn: int) -> str | None:
    """The candidate whose turn ``turn`` (1-based) is; ``None`` when nobody is there."""
    if not candidates:
        return None
    return candidates[(turn - 1) % len(candidates)]
