"""Array helpers for a million votes: distinct values and first-seen indexing without
``np.unique``'s hash table (NumPy 2's default for plain ``np.unique``, measured 3-20x slower
than sorting on a million database ids).

Used by the report on a million votes as well as by the modules here.
"""

from __future__ import annotations

import numpy as np

# A lookup table over the id range is used while the range is at most this many times the
# number of values (database keys of one study are close together).
_DENSE_SPAN_FACTOR = 4


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (``np.unique`` without ``nan`` handling, by sorting)."""
    ordered = np.sort(np.asarray(values).ravel())
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def has_duplicates(values: np.ndarray) -> bool:
    """Whether a value occurs more than once."""
    ordered = np.sort(np.asarray(values).ravel())
    return bool(ordered.size > 1 and (ordered[1:] == ordered[:-1]).any())


def first_seen_integers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of an integer array in first-seen order, and each entry's index into
    them (int64).

    Compact ids (the common case: database keys) go through a lookup table over their range
    (each value's first position is a ``minimum.at``, the order of the distinct values one sort
    of their first positions); others through a stable sort."""
    values = np.asarray(values)
    n = values.size
    if n == 0:
        return values[:0], np.zeros(0, dtype=np.int64)
    low, high = int(values.min()), int(values.max())
    span = high - low + 1
    if span <= _DENSE_SPAN_FACTOR * n + 1024 and high < 2**63:
        offset = (values - values.dtype.type(low)).astype(np.int64)
        first = np.full(span, n, dtype=np.int64)
        np.minimum.at(first, offset, np.arange(n, dtype=np.int64))
        present = np.flatnonzero(first < n)
        order = np.argsort(first[present])  # first positions are distinct: no ties to break
        rank = np.empty(span, dtype=np.int64)
        rank[present[order]] = np.arange(present.size, dtype=np.int64)
        distinct = (present[order] + low).astype(values.dtype)
        return distinct, rank[offset]
    distinct, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first)  # first positions are distinct: no ties to break
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return distinct[order], rank[inverse.ravel()]
