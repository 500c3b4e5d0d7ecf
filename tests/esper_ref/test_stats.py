"""Means with 95% intervals."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper_ref.stats import difference_ci, mean_ci, t_quantile


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


def test_welch_difference_by_hand() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    d = difference_ci(a, b)
    va, vb = statistics.variance(a) / 4, statistics.variance(b) / 5
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 4)  # 5.2: t with 5 degrees of freedom
    assert math.floor(df) == 5
    assert d.mean == pytest.approx(3.5) and d.n == 9
    assert d.std == pytest.approx(math.sqrt(va + vb))
    assert d.half_width == pytest.approx(2.571 * math.sqrt(va + vb))
    assert difference_ci([1.0, 1.0], [3.0, 3.0]) == (2.0, 0.0, 4, 0.0)
    with pytest.raises(ValueError, match="2 or more values a side, got 1 and 2"):
        difference_ci([1.0], [1.0, 2.0])


@given(
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=20),
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=20),
)
def test_difference_is_antisymmetric_and_no_narrower_than_either_side(
    a: list[float], b: list[float]
) -> None:
    ab, ba = difference_ci(a, b), difference_ci(b, a)
    assert ab.mean == pytest.approx(-ba.mean, abs=1e-9)
    assert ab.half_width == pytest.approx(ba.half_width)
    # the spread of the difference holds each side's own: it is never the tighter of the two
    for side in (a, b):
        assert ab.std >= statistics.stdev(side) / math.sqrt(len(side)) - 1e-9
