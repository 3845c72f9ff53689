"""The statistics an experiment's results need, in pure Python (no scipy: it is not installed).

Contract: every function is deterministic and side-effect free; two-sided tests
throughout. Inputs that make a test meaningless (an empty arm, a proportion with no
trials) raise ``ValueError`` naming the problem rather than returning a number.

- proportions: Wilson score interval, pooled two-proportion z-test, Fisher's exact
  test (two-sided, summing the tables no more probable than the observed one, as R's
  ``fisher.test`` does) for small counts, and the per-arm sample size a z-test needs.
- values (durations, latency, cost): Mann–Whitney U with the normal approximation,
  tie correction and continuity correction, computed from value → count histograms
  so a large sample with few distinct values costs no more than its distinct values;
  the median with a distribution-free (order-statistic) confidence interval; Noether's
  sample size for the U test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Histogram = Mapping[float, int]


def normal_cdf(z: float) -> float:
    """Φ(z), the standard normal distribution function."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def normal_quantile(p: float) -> float:
    """Φ⁻¹(p) for 0 < p < 1 (Acklam's rational approximation refined by one Halley step;
    accurate to ~1e-15)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p}")
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    low = 0.02425
    if p < low:
        q = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    elif p <= 1 - low:
        q = p - 0.5
        r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    else:
        q = math.sqrt(-2 * math.log(1 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    e = normal_cdf(x) - p
    u = e * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


# -- proportions ------------------------------------------------------------------------

def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (sound near 0 and 1, unlike p ± z·se)."""
    if trials <= 0:
        raise ValueError("a proportion needs at least one trial")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes ({successes}) must be between 0 and trials ({trials})")
    z = normal_quantile(0.5 + confidence / 2)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class TestResult:
    """A two-sided test of "no difference": its name, statistic and p-value."""

    method: str
    statistic: float
    p_value: float


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> TestResult:
    """Pooled two-proportion z-test; z > 0 when the second proportion is higher."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both groups need at least one trial")
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        # Every trial in both groups came out the same: no evidence of a difference.
        return TestResult("two-proportion z-test", 0.0, 1.0)
    z = (x2 / n2 - x1 / n1) / se
    return TestResult("two-proportion z-test", z, min(1.0, 2 * normal_cdf(-abs(z))))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(x1: int, n1: int, x2: int, n2: int) -> TestResult:
    """Fisher's exact test of the 2×2 table [[x1, n1−x1], [x2, n2−x2]], two-sided: the
    probability, given the margins, of every table no more probable than the observed one.
    The statistic is the observed count ``x1``."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both groups need at least one trial")
    successes = x1 + x2
    total = n1 + n2
    lo, hi = max(0, successes - n2), min(successes, n1)

    def log_p(k: int) -> float:
        return _log_comb(n1, k) + _log_comb(n2, successes - k) - _log_comb(total, successes)

    observed = log_p(x1)
    # Relative tolerance as R uses, so tables equal to the observed one up to rounding count.
    p = sum(math.exp(lp) for lp in (log_p(k) for k in range(lo, hi + 1)) if lp <= observed + 1e-7)
    return TestResult("Fisher's exact test", float(x1), min(1.0, p))


def proportion_test(x1: int, n1: int, x2: int, n2: int) -> TestResult:
    """The z-test, or Fisher's exact test when any expected cell count is below 5
    (where the normal approximation is poor)."""
    successes, total = x1 + x2, n1 + n2
    expected = [n * successes / total for n in (n1, n2)] + [n * (total - successes) / total for n in (n1, n2)]
    if min(expected) < 5:
        return fisher_exact(x1, n1, x2, n2)
    return two_proportion_z_test(x1, n1, x2, n2)


def proportion_sample_size(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Calls per arm a two-sided z-test needs to detect p1 vs p2 (equal arms); None when
    the proportions are equal (no sample size detects no difference)."""
    if p1 == p2:
        return None
    za, zb = normal_quantile(1 - alpha / 2), normal_quantile(power)
    pbar = (p1 + p2) / 2
    root = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root * root / (p1 - p2) ** 2)


# -- values -------------------------------------------------------------------------------

def histogram(values: Iterable[float]) -> dict[float, int]:
    """Value → count."""
    out: dict[float, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


@dataclass(frozen=True)
class MannWhitney:
    """U of the second sample (pairs where it is larger, ties counting ½), its z, two-sided
    p-value, and the common-language effect size U/(n1·n2) (P(second > first) + ½·P(tie))."""

    u: float
    z: float
    p_value: float
    effect: float

    @property
    def as_test(self) -> TestResult:
        return TestResult("Mann–Whitney U test", self.u, self.p_value)


def mann_whitney(first: Histogram, second: Histogram) -> MannWhitney:
    """Mann–Whitney U test from value → count histograms, normal approximation with the
    tie correction of the variance and a continuity correction of ½."""
    n1, n2 = sum(first.values()), sum(second.values())
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples need at least one value")
    n = n1 + n2
    rank_sum_2 = 0.0
    tie_term = 0.0
    below = 0
    for value in sorted(set(first) | set(second)):
        c1, c2 = first.get(value, 0), second.get(value, 0)
        t = c1 + c2
        mid_rank = below + (t + 1) / 2
        rank_sum_2 += c2 * mid_rank
        tie_term += t ** 3 - t
        below += t
    u = rank_sum_2 - n2 * (n2 + 1) / 2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:
        return MannWhitney(u, 0.0, 1.0, u / (n1 * n2))
    diff = u - mean
    corrected = math.copysign(max(abs(diff) - 0.5, 0.0), diff)
    z = corrected / math.sqrt(variance)
    return MannWhitney(u, z, min(1.0, 2 * normal_cdf(-abs(z))), u / (n1 * n2))


def mann_whitney_sample_size(effect: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Values per arm the U test needs (Noether's formula, equal arms) to detect the
    common-language effect ``effect`` = P(second > first); None when it is ½ (no difference)."""
    if abs(effect - 0.5) < 1e-12:
        return None
    za, zb = normal_quantile(1 - alpha / 2), normal_quantile(power)
    total = (za + zb) ** 2 / (3 * (effect - 0.5) ** 2)
    return math.ceil(total / 2)


def _order_statistic(sorted_counts: list[tuple[float, int]], k: int) -> float:
    """The k-th smallest value (1-based) of a sorted histogram."""
    seen = 0
    for value, count in sorted_counts:
        seen += count
        if seen >= k:
            return value
    raise ValueError(f"order statistic {k} is past the sample's end ({seen})")


@dataclass(frozen=True)
class Summary:
    """n, mean, median and the median's distribution-free confidence interval (None while
    the sample is too small for the interval to be finite)."""

    n: int
    mean: float
    median: float
    median_ci: tuple[float, float] | None


def summarize(values: Histogram, confidence: float = 0.95) -> Summary:
    """Describe a sample. The median's interval is [x(j), x(k)] with j, k = n/2 ∓ z·√n/2
    (the binomial order-statistic interval, normal approximation): it assumes nothing
    about the shape of the distribution, like the U test."""
    items = sorted((v, c) for v, c in values.items() if c > 0)
    n = sum(c for _, c in items)
    if n == 0:
        raise ValueError("an empty sample has no summary")
    mean = sum(v * c for v, c in items) / n
    if n % 2:
        median = _order_statistic(items, (n + 1) // 2)
    else:
        median = (_order_statistic(items, n // 2) + _order_statistic(items, n // 2 + 1)) / 2
    z = normal_quantile(0.5 + confidence / 2)
    half = z * math.sqrt(n) / 2
    j, k = math.floor(n / 2 - half), math.ceil(n / 2 + half) + 1
    ci = (_order_statistic(items, j), _order_statistic(items, k)) if j >= 1 and k <= n else None
    return Summary(n, mean, median, ci)
