"""Which arm of an experiment a caller gets: sticky, weighted, and moving as few callers
as possible when weights change.

Weighted rendezvous hashing: every arm scores the caller with
``-ln(u) / weight`` where ``u`` in (0, 1) comes from SHA-256 of (experiment id, arm id,
caller key); the lowest score wins. So

- the same caller key always gets the same arm of the same experiment (no state kept);
- arm *i* wins with probability ``weight_i / Σ weights`` (the minimum of independent
  exponentials with rates ``weight_i``);
- changing one arm's weight only moves callers to that arm (raised) or away from it
  (lowered); callers of the other arms keep theirs, which a cumulative-interval split
  cannot promise with three or more arms;
- another experiment (a new id) reshuffles callers independently.

The caller key is the other party's E.164 number for phone calls (caller on inbound,
callee on outbound); see ``agents.experiments.services.caller_key`` for web calls.
Importing no Django keeps this testable and fast.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Protocol, TypeVar


class WeightedArm(Protocol):
    @property
    def key(self) -> str: ...  # a stable id of the arm (its public id)

    @property
    def weight(self) -> int: ...


A = TypeVar("A", bound=WeightedArm)

_SCALE = float(1 << 64)


def unit_hash(experiment_key: str, arm_key: str, caller_key: str) -> float:
    """A number in the open interval (0, 1), uniform over callers, fixed per triple."""
    digest = hashlib.sha256(f"{experiment_key}\x1f{arm_key}\x1f{caller_key}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / _SCALE


def pick_arm(experiment_key: str, arms: Sequence[A], caller_key: str) -> A:
    """The arm ``caller_key`` is assigned to; arms with weight 0 are never picked.
    Raises ValueError when no arm has a positive weight."""
    best: A | None = None
    best_score = math.inf
    for arm in arms:
        if arm.weight <= 0:
            continue
        score = -math.log(unit_hash(experiment_key, arm.key, caller_key)) / arm.weight
        if score < best_score:
            best, best_score = arm, score
    if best is None:
        raise ValueError("the experiment has no arm with a positive weight")
    return best
