"""Adaptive overlap: how many more votes an item needs.

Rule (a simple form of the adaptive repeated labelling of Sheng, Provost & Ipeirotis 2008, "Get
another label? Improving data quality and data mining using multiple, noisy labelers", which
spends extra labels on items whose labels are uncertain):

1. every item first gets the study's base overlap ``k`` votes;
2. after that, an item whose votes are *split* gets one more vote at a time, up to the maximum
   overlap; an item with a clear winner gets no more.

An item is split when the plurality is shared (e.g. 1-1, or 2-2) or, with
``require_strict_majority=True``, when no category has more than half of the votes (e.g. 2-1-1).
By default tie and both-bad votes are merged before counting, because both express "no
preference between the systems" (the convention of :mod:`.winrate`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scoring.stats.votes import BOTH_BAD, TIE


def _check_counts(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(counts)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("counts must be a non-empty 1-D sequence of per-category vote counts")
    if arr.dtype.kind not in "iu" and not (
        arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
    ):
        raise ValueError("counts must be whole numbers")
    if (arr < 0).any():
        raise ValueError("counts must be non-negative")
    return arr.astype(np.int64)


def is_split(
    counts: Sequence[int] | np.ndarray,
    *,
    merge_tie_and_both_bad: bool = True,
    require_strict_majority: bool = False,
) -> bool:
    """Whether an item's votes are split (see the module docstring).

    Args:
        counts: votes per preference code (index 0 base, 1 tuned, 2 tie, 3 both bad); shorter
            or longer sequences are per-category counts of any nominal coding.
        merge_tie_and_both_bad: add the both-bad count (index 3) to the tie count (index 2).
        require_strict_majority: a clear winner needs more than half of the votes.

    Returns:
        ``False`` for an item without votes (nothing to split).

    Raises:
        ValueError: counts are not non-negative whole numbers.
    """
    arr = _check_counts(counts)
    if merge_tie_and_both_bad and arr.size > BOTH_BAD:
        arr = arr.copy()
        arr[TIE] += arr[BOTH_BAD]
        arr[BOTH_BAD] = 0
    total = int(arr.sum())
    if total == 0:
        return False
    top = int(arr.max())
    if require_strict_majority:
        return 2 * top <= total
    return int((arr == top).sum()) > 1


def additional_votes_needed(
    counts: Sequence[int] | np.ndarray,
    *,
    base_overlap: int,
    max_overlap: int,
    merge_tie_and_both_bad: bool = True,
    require_strict_majority: bool = False,
) -> int:
    """Number of further votes to request for one item.

    Args:
        counts: votes so far per preference code (index 0 base, 1 tuned, 2 tie, 3 both bad).
        base_overlap: votes every item gets (``k``).
        max_overlap: most votes an item may get.
        merge_tie_and_both_bad, require_strict_majority: see :func:`is_split`.

    Returns:
        ``base_overlap - n`` while below the base overlap; then 1 if the votes are split and
        ``n < max_overlap``; else 0.

    Raises:
        ValueError: ``base_overlap < 1``, ``max_overlap < base_overlap``, or malformed counts.
    """
    for name, value in (("base_overlap", base_overlap), ("max_overlap", max_overlap)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if base_overlap < 1:
        raise ValueError(f"base_overlap must be >= 1, got {base_overlap}")
    if max_overlap < base_overlap:
        raise ValueError(f"max_overlap ({max_overlap}) must be >= base_overlap ({base_overlap})")
    arr = _check_counts(counts)
    n = int(arr.sum())
    if n >= max_overlap:
        return 0
    if n < base_overlap:
        return int(base_overlap - n)
    split = is_split(
        arr,
        merge_tie_and_both_bad=merge_tie_and_both_bad,
        require_strict_majority=require_strict_majority,
    )
    return 1 if split else 0
