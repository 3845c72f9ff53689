"""The experiment statistics against published values and against independent
computations in the test (exact enumeration, the Pearson chi-square of the same table)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from agents.experiments import stats


def test_normal_distribution_known_values() -> None:
    assert stats.normal_cdf(1.96) == pytest.approx(0.9750021048517795, abs=1e-12)
    assert stats.normal_cdf(0) == 0.5
    assert stats.normal_quantile(0.975) == pytest.approx(1.959963984540054, abs=1e-9)
    assert stats.normal_quantile(0.8) == pytest.approx(0.8416212335729143, abs=1e-9)
    assert stats.normal_quantile(0.001) == pytest.approx(-3.090232306167813, abs=1e-9)
    with pytest.raises(ValueError, match="between 0 and 1"):
        stats.normal_quantile(1.0)


@pytest.mark.parametrize(("x", "n", "low", "high"), [
    # Newcombe (1998), Statistics in Medicine 17:857, table I, method 3 (Wilson score).
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
])
def test_wilson_interval_matches_newcombe(x: int, n: int, low: float, high: float) -> None:
    got = stats.wilson_interval(x, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="at least one trial"):
        stats.wilson_interval(0, 0)
    with pytest.raises(ValueError, match="between 0 and trials"):
        stats.wilson_interval(5, 4)


def test_fisher_lady_tasting_tea() -> None:
    # Fisher (1935): 3 of 4 milk-first cups picked right; two-sided p = 34/70.
    result = stats.fisher_exact(3, 4, 1, 4)
    assert result.p_value == pytest.approx(34 / 70, abs=1e-12)


def _fisher_by_enumeration(x1: int, n1: int, x2: int, n2: int) -> Fraction:
    """Every way to deal the successes into the two groups, in exact fractions."""
    k = x1 + x2
    total = math.comb(n1 + n2, k)
    probs = {a: Fraction(math.comb(n1, a) * math.comb(n2, k - a), total)
             for a in range(max(0, k - n2), min(k, n1) + 1)}
    return sum((p for p in probs.values() if p <= probs[x1]), Fraction(0))


@pytest.mark.parametrize("table", [(0, 5, 5, 5), (2, 7, 6, 8), (1, 12, 4, 9), (7, 10, 2, 10), (3, 3, 0, 6)])
def test_fisher_matches_exact_enumeration(table: tuple[int, int, int, int]) -> None:
    assert stats.fisher_exact(*table).p_value == pytest.approx(float(_fisher_by_enumeration(*table)), rel=1e-9)


def test_z_test_is_the_pearson_chi_square_of_the_same_table() -> None:
    x1, n1, x2, n2 = 45, 100, 60, 100
    result = stats.two_proportion_z_test(x1, n1, x2, n2)
    observed = [[x1, n1 - x1], [x2, n2 - x2]]
    rows, cols, n = [n1, n2], [x1 + x2, n1 + n2 - x1 - x2], n1 + n2
    chi2 = sum((observed[i][j] - rows[i] * cols[j] / n) ** 2 / (rows[i] * cols[j] / n)
               for i in range(2) for j in range(2))
    assert result.statistic == pytest.approx(math.sqrt(chi2), rel=1e-12)  # B is higher: z > 0
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(chi2 / 2)), rel=1e-12)  # chi-square, 1 df
    assert result.statistic == pytest.approx(2.1240, abs=1e-4) and result.p_value == pytest.approx(0.0337, abs=1e-4)


def test_small_counts_use_fisher_and_large_ones_the_z_test() -> None:
    assert stats.proportion_test(1, 8, 4, 8).method == "Fisher's exact test"
    assert stats.proportion_test(45, 100, 60, 100).method == "two-proportion z-test"


def test_sample_size_for_proportions() -> None:
    # (1.96·√(2·.55·.45) + 0.8416·√(.25 + .24))² / 0.1² = 387.3 → 388 per arm (Fleiss, no continuity correction).
    assert stats.proportion_sample_size(0.5, 0.6) == 388
    assert stats.proportion_sample_size(0.3, 0.3) is None


def _u_by_pairs(first: list[float], second: list[float]) -> float:
    return sum(1.0 if b > a else 0.5 if b == a else 0.0 for a in first for b in second)


@pytest.mark.parametrize(("first", "second"), [
    ([0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46], [1.15, 0.88, 0.90, 0.74, 1.21]),  # R's wilcox.test
    ([3, 3, 4, 5, 5, 5, 7], [4, 5, 5, 6, 8, 8]),  # heavy ties
    ([1, 2, 2, 2, 9], [2, 2, 3, 4, 4, 10]),
])
def test_mann_whitney_against_exact_enumeration(first: list[float], second: list[float]) -> None:
    result = stats.mann_whitney(stats.histogram(first), stats.histogram(second))
    assert result.u == _u_by_pairs(first, second)
    assert result.effect == pytest.approx(result.u / (len(first) * len(second)))
    # Every way the pooled values could have been split: U's permutation distribution.
    pooled = first + second
    us = [_u_by_pairs([pooled[i] for i in range(len(pooled)) if i not in chosen], [pooled[i] for i in chosen])
          for chosen in map(set, itertools.combinations(range(len(pooled)), len(second)))]
    mean = sum(us) / len(us)
    variance = sum((u - mean) ** 2 for u in us) / len(us)
    assert mean == pytest.approx(len(first) * len(second) / 2)
    # The tie-corrected variance is exactly U's permutation variance.
    expected_z = math.copysign(max(abs(result.u - mean) - 0.5, 0), result.u - mean) / math.sqrt(variance)
    assert result.z == pytest.approx(expected_z, rel=1e-9)
    exact_p = sum(1 for u in us if abs(u - mean) >= abs(result.u - mean) - 1e-9) / len(us)
    assert result.p_value == pytest.approx(exact_p, abs=0.04)  # the normal approximation is close


def test_mann_whitney_all_equal_is_no_difference() -> None:
    result = stats.mann_whitney({5.0: 10}, {5.0: 12})
    assert (result.p_value, result.effect) == (1.0, 0.5)
    with pytest.raises(ValueError, match="at least one value"):
        stats.mann_whitney({}, {1.0: 3})


def test_noether_sample_size() -> None:
    # P(B > A) = 0.6: (1.96 + 0.8416)² / (3 · 0.1²) = 261.6 in all → 131 per arm.
    assert stats.mann_whitney_sample_size(0.6) == 131
    assert stats.mann_whitney_sample_size(0.5) is None


def test_median_interval_by_order_statistics() -> None:
    # n = 100: the 95 % interval runs from the 40th to the 61st value (Conover, Practical
    # Nonparametric Statistics, §3.2).
    summary = stats.summarize({float(v): 1 for v in range(1, 101)})
    assert (summary.n, summary.mean, summary.median, summary.median_ci) == (100, 50.5, 50.5, (40.0, 61.0))
    small = stats.summarize({1.0: 2, 3.0: 1})
    assert (small.median, small.median_ci) == (1.0, None)  # too few values for a finite interval
