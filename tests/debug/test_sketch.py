"""The streaming quantile sketch: percentiles within the stated relative error, bounded memory."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kansoku.debug._sketch import DEFAULT_RELATIVE_ERROR, QuantileSketch

QS = (0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)


def exact(values: list[float], q: float) -> float:
    """The order statistic the sketch promises to approximate: rank floor(q * (n - 1)), 0-based."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def assert_within(sketch: QuantileSketch, values: list[float]) -> None:
    """Every quantile of QS is within the relative error of the exact one."""
    bound = sketch.relative_error * (1 + 1e-9)  # floating-point slack on bucket edges
    for q in QS:
        truth = exact(values, q)
        assert abs(sketch.quantile(q) - truth) <= bound * truth, (q, sketch.quantile(q), truth)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=1e-6, max_value=1e4, allow_nan=False), min_size=1, max_size=400))
def test_quantiles_within_relative_error_on_any_data(values: list[float]) -> None:
    """For arbitrary data, each quantile is within 1 % of the exact order statistic."""
    sketch = QuantileSketch()
    for value in values:
        sketch.add(value)
    assert_within(sketch, values)
    assert sketch.count == len(values)
    assert (sketch.min, sketch.max) == (min(values), max(values))
    assert sketch.sum == pytest.approx(math.fsum(values))


@pytest.mark.parametrize("relative_error", [0.005, 0.01, 0.05])
def test_quantiles_on_a_large_seeded_latency_sample(relative_error: float) -> None:
    """100k log-normal latencies (seeded): percentiles agree within the configured error."""
    rng = random.Random(20261128)
    values = [rng.lognormvariate(-4.0, 1.2) for _ in range(100_000)]
    sketch = QuantileSketch(relative_error)
    for value in values:
        sketch.add(value)
    assert_within(sketch, values)
    assert sketch.mean == pytest.approx(math.fsum(values) / len(values))


def test_memory_is_bounded_by_the_value_range_not_the_count() -> None:
    """A million observations over 1 us..10 s use a few hundred buckets; max_buckets caps it anyway."""
    rng = random.Random(7)
    sketch = QuantileSketch()
    for _ in range(200_000):
        sketch.add(10 ** rng.uniform(-6, 1))
    assert sketch.bucket_count <= math.ceil(math.log(1e7) / math.log(1.01 / 0.99)) + 1
    capped = QuantileSketch(max_buckets=50)
    values = [10 ** rng.uniform(-6, 1) for _ in range(10_000)]
    for value in values:
        capped.add(value)
    assert capped.bucket_count == 50
    truth = exact(values, 0.99)  # high quantiles stay exact-ish: only the lowest buckets merged
    assert abs(capped.quantile(0.99) - truth) <= DEFAULT_RELATIVE_ERROR * truth * (1 + 1e-9)


def test_empty_zero_and_tiny_values() -> None:
    """Empty: NaN; values under min_value count as zero; min and max stay exact."""
    sketch = QuantileSketch()
    assert math.isnan(sketch.quantile(0.5)) and math.isnan(sketch.mean)
    for value in (0.0, 0.0, 1e-12, 2.0):
        sketch.add(value)
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantile(1.0) == 2.0
    assert (sketch.min, sketch.max, sketch.count) == (0.0, 2.0, 4)


def test_relative_error_must_be_a_fraction() -> None:
    """A relative error outside (0, 1) is refused."""
    with pytest.raises(ValueError, match="between 0 and 1"):
        QuantileSketch(1.5)
