"""Experiment assignment: sticky per caller, shares matching the weights, and weight
changes that move only the callers they must."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from agents.experiments.assignment import pick_arm

EXPERIMENT = "6a1f3c1e-0000-4000-8000-00000000e001"
CALLERS = [f"+1{2000000000 + i * 7919:010d}" for i in range(10_000)]


@dataclass(frozen=True)
class Arm:
    key: str
    weight: int


def arms(*weights: int) -> list[Arm]:
    return [Arm(f"arm-{'ABCDEF'[i]}", w) for i, w in enumerate(weights)]


def assign(arm_list: list[Arm], experiment: str = EXPERIMENT) -> dict[str, str]:
    return {c: pick_arm(experiment, arm_list, c).key for c in CALLERS}


def test_the_same_caller_always_gets_the_same_arm() -> None:
    split = arms(1, 1)
    first = assign(split)
    for caller in CALLERS[:500]:
        assert {pick_arm(EXPERIMENT, split, caller).key for _ in range(20)} == {first[caller]}
    # the arms' order in the list does not matter
    assert assign(list(reversed(split))) == first


@pytest.mark.parametrize("weights", [(1, 1), (1, 3), (2, 3, 5), (1, 1, 1, 1)])
def test_shares_match_the_weights_over_ten_thousand_callers(weights: tuple[int, ...]) -> None:
    split = arms(*weights)
    counts = Counter(assign(split).values())
    for arm in split:
        expected = arm.weight / sum(weights)
        assert abs(counts[arm.key] / len(CALLERS) - expected) < 0.015, (arm, counts)


def test_raising_one_weight_moves_callers_only_into_that_arm() -> None:
    before = assign(arms(1, 1, 1))
    after = assign(arms(1, 2, 1))
    moved = [(before[c], after[c]) for c in CALLERS if before[c] != after[c]]
    assert {to for _, to in moved} == {"arm-B"}  # nobody is moved between A and C
    # B's share goes from 1/3 to 1/2: 1/6 of the callers must move, and no more.
    assert abs(len(moved) / len(CALLERS) - 1 / 6) < 0.015


def test_lowering_a_weight_to_zero_moves_exactly_that_arms_callers() -> None:
    before = assign(arms(1, 1, 1))
    after = assign(arms(1, 0, 1))
    assert "arm-B" not in after.values()
    assert all(after[c] == before[c] for c in CALLERS if before[c] != "arm-B")


def test_another_experiment_reshuffles_callers() -> None:
    same = sum(a == b for a, b in zip(assign(arms(1, 1)).values(),
                                      assign(arms(1, 1), "other-experiment").values(), strict=True))
    assert abs(same / len(CALLERS) - 0.5) < 0.03


def test_no_arm_with_weight_is_an_error() -> None:
    with pytest.raises(ValueError, match="positive weight"):
        pick_arm(EXPERIMENT, arms(0, 0), "+12125550100")
