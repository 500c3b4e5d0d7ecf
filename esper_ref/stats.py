"""Means with 95% confidence intervals, for evaluation summaries and the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

# Two-sided 97.5% quantiles of Student's t by degrees of freedom (1..30); above 30 the normal
# quantile is within 2% of t's, close enough for an interval that is itself an estimate.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.96


class MeanCI(NamedTuple):
    """A sample mean and the half-width of its 95% interval (``nan`` for fewer than 2)."""

    mean: float
    half_width: float
    n: int
    std: float = math.nan
    """Sample standard deviation (``nan`` for fewer than 2)."""

    def __str__(self) -> str:
        if math.isnan(self.half_width):
            return f"{self.mean:.3f}"
        return f"{self.mean:.3f} ± {self.half_width:.3f}"


def t_quantile(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (``df >= 1``)."""
    if df < 1:
        raise ValueError(f"t_quantile: df={df} must be >= 1")
    return _T975[df - 1] if df <= len(_T975) else _Z975


def mean_ci(values: Sequence[float]) -> MeanCI:
    """Mean of ``values`` with a 95% Student-t interval."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci: values is empty")
    mean = math.fsum(values) / n
    if n < 2:
        return MeanCI(mean, math.nan, n)
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return MeanCI(mean, t_quantile(n - 1) * math.sqrt(var / n), n, math.sqrt(var))


def difference_ci(a: Sequence[float], b: Sequence[float]) -> MeanCI:
    """``mean(b) - mean(a)`` for two independent samples, with Welch's 95% interval (the
    samples may differ in spread; the degrees of freedom are Welch-Satterthwaite's, rounded
    down, so the interval errs wide). ``std`` is the difference's standard error."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"difference_ci: need 2 or more values a side, got {len(a)} and {len(b)}")
    ca, cb = mean_ci(a), mean_ci(b)
    va, vb = ca.std**2 / ca.n, cb.std**2 / cb.n
    se = math.sqrt(va + vb)
    diff = cb.mean - ca.mean
    if se == 0:
        return MeanCI(diff, 0.0, ca.n + cb.n, 0.0)
    df = (va + vb) ** 2 / (va**2 / (ca.n - 1) + vb**2 / (cb.n - 1))
    return MeanCI(diff, t_quantile(max(1, math.floor(df))) * se, ca.n + cb.n, se)
