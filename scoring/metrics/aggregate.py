"""Per-study aggregates of item metric values.

:func:`paired_delta_ci` is a percentile bootstrap (Efron & Tibshirani, 1993, ch. 13) over items
for the mean paired difference ``tuned - base``: items are resampled with replacement, keeping
each item's two values together, so the interval reflects item-to-item variation of the
*difference* (the same items were answered by both systems).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from scoring.metrics.registry import ItemScore

__all__ = ["PairedDelta", "aligned_pairs", "item_means", "paired_delta_ci"]

# Upper bound on resample-index matrix entries held at once (~8 MB of int64, and as much for
# the gathered deltas); larger chunks were no faster on 100,000 items and peaked near 64 MB.
_CHUNK_ELEMENTS = 1_000_000


class PairedDelta(NamedTuple):
    """Means of both systems, their difference (tuned - base) and its bootstrap CI."""

    mean_base: float
    mean_tuned: float
    delta: float
    ci: tuple[float, float]


def _as_vector(name: str, values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values (drop skipped items first)")
    return arr


def paired_delta_ci(
    base_values: Sequence[float],
    tuned_values: Sequence[float],
    *,
    n_resamples: int = 2000,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> PairedDelta:
    """Mean of each system, mean paired delta and its percentile-bootstrap CI.

    ``base_values[i]`` and ``tuned_values[i]`` are the same metric on item ``i`` (units are the
    metric's). The CI is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of
    ``n_resamples`` resampled mean deltas. Deterministic for a given ``rng`` state; the caller
    owns the generator (pass ``numpy.random.default_rng(seed)`` for reproducible reports).
    Raises ``ValueError`` for fewer than 2 pairs, mismatched lengths, non-finite values,
    ``n_resamples < 1`` or ``confidence`` outside (0, 1).
    """
    base = _as_vector("base_values", base_values)
    tuned = _as_vector("tuned_values", tuned_values)
    if base.shape != tuned.shape:
        raise ValueError(f"{base.size} base values but {tuned.size} tuned values; pairs needed")
    n = base.size
    if n < 2:
        # One pair gives a zero-width interval, i.e. fake certainty.
        raise ValueError(f"need at least 2 paired items for a bootstrap CI, got {n}")
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError("n_resamples must be a positive integer")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1 (exclusive)")
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator")

    diffs = tuned - base
    boot = np.empty(n_resamples, dtype=float)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    # Chunked so memory stays bounded for large studies; each row is one resample of items.
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        boot[start:stop] = diffs[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(boot, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    mean_base, mean_tuned = float(base.mean()), float(tuned.mean())
    return PairedDelta(mean_base, mean_tuned, float(diffs.mean()), (float(low), float(high)))


def aligned_pairs(
    base_values: Sequence[float | None], tuned_values: Sequence[float | None]
) -> tuple[list[float], list[float]]:
    """Drop items where either system has no value (metric skipped), keeping the pairing.

    Raises ``ValueError`` if the sequences differ in length.
    """
    if len(base_values) != len(tuned_values):
        raise ValueError(f"{len(base_values)} base values but {len(tuned_values)} tuned values")
    kept = [
        (b, t)
        for b, t in zip(base_values, tuned_values, strict=True)
        if b is not None and t is not None
    ]
    return [b for b, _ in kept], [t for _, t in kept]


def item_means(scores: Iterable[ItemScore]) -> dict[str, float]:
    """Mean value per metric name over the given item scores (e.g. a JSON validity *rate*)."""
    sums: dict[str, list[float]] = {}
    for score in scores:
        sums.setdefault(score.metric, []).append(score.value)
    return {name: math.fsum(vals) / len(vals) for name, vals in sums.items()}
