"""A bounded streaming quantile sketch (the DDSketch idea: log-spaced buckets).

A value ``x`` goes to bucket ``ceil(log(x) / log(gamma))`` with ``gamma = (1 + a) / (1 - a)``; the
bucket is reported as ``2 * gamma**i / (gamma + 1)``, which is within relative error ``a`` of every
value the bucket holds. So for any quantile the sketch answers ``v`` with
``|v - exact| <= a * exact``, where ``exact`` is the value of rank ``floor(q * (n - 1))`` (0-based)
in the sorted data, for every value of at least ``min_value``. Values below ``min_value`` (zero
durations from a coarse clock) are counted as 0.

Memory is bounded by the number of buckets, which is ``log(max / min) / log(gamma)``: about 1,500
for durations from 1 ns to 3 hours at 1 %. Past ``max_buckets`` the lowest buckets are merged into
their neighbour, which loses accuracy only for the lowest quantiles.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["DEFAULT_RELATIVE_ERROR", "QuantileSketch"]

DEFAULT_RELATIVE_ERROR: Final = 0.01


class QuantileSketch:
    """Count, sum, min, max and relative-error quantiles of a stream of non-negative values."""

    __slots__ = ("_buckets", "_gamma", "_inv_log_gamma", "count", "max", "max_buckets", "min",
                 "min_value", "relative_error", "sum", "zeros")

    def __init__(
        self,
        relative_error: float = DEFAULT_RELATIVE_ERROR,
        *,
        min_value: float = 1e-9,
        max_buckets: int = 2048,
    ) -> None:
        if not 0.0 < relative_error < 1.0:
            raise ValueError("relative_error must be between 0 and 1")
        self.relative_error = relative_error
        self.min_value = min_value
        self.max_buckets = max_buckets
        self._gamma = (1.0 + relative_error) / (1.0 - relative_error)
        self._inv_log_gamma = 1.0 / math.log(self._gamma)
        self._buckets: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float) -> None:
        """Add one observation (negative values count as 0)."""
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if value < self.min_value:
            self.zeros += 1
            return
        index = math.ceil(math.log(value) * self._inv_log_gamma)
        buckets = self._buckets
        buckets[index] = buckets.get(index, 0) + 1
        if len(buckets) > self.max_buckets:
            self._collapse()

    def _collapse(self) -> None:
        """Merge the lowest bucket into the next one, keeping the number of buckets bounded."""
        lowest, second = sorted(self._buckets)[:2]
        self._buckets[second] += self._buckets.pop(lowest)

    def quantile(self, q: float) -> float:
        """The value at quantile ``q`` (0..1), within the stated relative error; NaN when empty."""
        if self.count == 0:
            return math.nan
        rank = math.floor(q * (self.count - 1))
        if rank <= 0:  # the extremes are kept exactly
            return self.min if self.min > 0 else 0.0
        if rank >= self.count - 1:
            return self.max
        seen = self.zeros
        if rank < seen:
            return max(self.min, 0.0)
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen > rank:
                estimate = 2.0 * self._gamma**index / (self._gamma + 1.0)
                return min(max(estimate, self.min), self.max)
        return self.max

    def quantiles(self, qs: tuple[float, ...]) -> list[float]:
        """Several quantiles at once."""
        return [self.quantile(q) for q in qs]

    def copy(self) -> QuantileSketch:
        """An independent copy (to answer queries outside the writers' lock)."""
        other = QuantileSketch.__new__(QuantileSketch)
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        other._buckets = dict(self._buckets)
        return other

    @property
    def mean(self) -> float:
        """The exact mean of the observations (NaN when empty)."""
        return self.sum / self.count if self.count else math.nan

    @property
    def bucket_count(self) -> int:
        """Buckets in use (the memory bound)."""
        return len(self._buckets)
