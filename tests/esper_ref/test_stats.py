"""Means with 95% intervals."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper_ref.stats import mean_ci, t_quantile


def test_known_interval() -> None:
    ci = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert ci.mean == 2.5 and ci.n == 4
    assert ci.std == pytest.approx(statistics.stdev([1.0, 2.0, 3.0, 4.0]))
    assert ci.half_width == pytest.approx(3.182 * ci.std / 2)
    assert str(ci) == "2.500 ± 2.054"
    one = mean_ci([5.0])
    assert one.mean == 5.0 and math.isnan(one.half_width) and str(one) == "5.000"
    with pytest.raises(ValueError, match="empty"):
        mean_ci([])


def test_quantiles_fall_towards_the_normal() -> None:
    assert t_quantile(1) == pytest.approx(12.706)
    assert t_quantile(3) == pytest.approx(3.182)
    assert t_quantile(1000) == pytest.approx(1.96)
    with pytest.raises(ValueError, match="df=0"):
        t_quantile(0)


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=50))
def test_interval_contains_the_mean_and_is_symmetric(values: list[float]) -> None:
    ci = mean_ci(values)
    assert ci.half_width >= 0
    assert ci.mean == pytest.approx(statistics.fmean(values), abs=1e-6)
