"""Preference-vote coding, vote records, majority vote and long-to-matrix conversion.

Coding (a nominal variable): the preferred system, ``0`` = base, ``1`` = tuned, ``2`` = tie,
``3`` = both bad. The human preference *score* of a vote is tuned = 1, tie = both bad = 0.5,
base = 0, the scoring of MT-Bench / Chatbot Arena win rates (Zheng et al. 2023, "Judging
LLM-as-a-Judge with MT-Bench and Chatbot Arena"), in which "tie (bothbad)" is a tie.

Majority vote is the plurality category per item (Dawid & Skene 1979 call it the naive
estimator); when the plurality is shared the item has no majority, which is reported either as a
tie (no system preferred) or as ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from scoring.stats.arrays import first_seen_integers, has_duplicates

BASE = 0
TUNED = 1
TIE = 2
BOTH_BAD = 3
PREFERENCE_CODES: tuple[int, ...] = (BASE, TUNED, TIE, BOTH_BAD)
CODE_NAMES: tuple[str, ...] = ("base", "tuned", "tie", "both_bad")

SplitPolicy = Literal["tie", "none"]


@dataclass(frozen=True)
class Vote:
    """One rater's judgement of one A/B item.

    Attributes:
        rater: rater identifier (any hashable).
        item: item identifier (any hashable).
        choice: preferred system, a code in :data:`PREFERENCE_CODES`.
        left: system shown in the left slot (:data:`BASE` or :data:`TUNED`); ``None`` if unknown.
        seconds: time the rater spent on the item, in seconds; ``None`` if unknown.
    """

    rater: Hashable
    item: Hashable
    choice: int
    left: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class ReliabilityMatrix:
    """A ``(raters, items)`` ratings matrix with ``nan`` for missing votes, plus its labels."""

    data: np.ndarray
    raters: tuple[Hashable, ...]
    items: tuple[Hashable, ...]


def check_choices(choices: Iterable[int] | np.ndarray, *, name: str = "choices") -> np.ndarray:
    """Return ``choices`` as a new int64 array after checking every entry is a preference code.

    Raises:
        ValueError: an entry is not one of 0 (base), 1 (tuned), 2 (tie), 3 (both bad), or the
            input is not one-dimensional.
    """
    raw = np.asarray(list(choices) if not isinstance(choices, np.ndarray) else choices)
    if raw.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {raw.shape}")
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    if raw.dtype.kind == "f" and not np.all(np.isfinite(raw)):
        raise ValueError(f"{name} contains nan or inf; drop missing votes first")
    if raw.dtype.kind not in "iuf" or not np.all(np.isin(raw, PREFERENCE_CODES)):
        bad = sorted({repr(v) for v in raw.tolist() if v not in PREFERENCE_CODES})[:5]
        raise ValueError(
            f"{name} must contain only preference codes 0 (base), 1 (tuned), 2 (tie), "
            f"3 (both_bad); found {', '.join(bad)}"
        )
    return raw.astype(np.int64)


def preference_scores(choices: Iterable[int] | np.ndarray) -> np.ndarray:
    """Map preference codes to scores: tuned = 1, base = 0, tie and both bad = 0.5.

    Raises:
        ValueError: an entry is not a preference code.
    """
    codes = check_choices(choices)
    return np.array([0.0, 1.0, 0.5, 0.5])[codes]


def swap_systems(choices: Iterable[int] | np.ndarray) -> np.ndarray:
    """Return the codes with base and tuned exchanged (ties and both-bad stay).

    Raises:
        ValueError: an entry is not a preference code.
    """
    codes = check_choices(choices)
    return np.array([TUNED, BASE, TIE, BOTH_BAD])[codes]


def index_items(item_ids: Sequence[Hashable]) -> tuple[tuple[Hashable, ...], np.ndarray]:
    """Return the distinct item ids in first-seen order and each entry's index into them.

    Integer ids (database keys, the common case, as a list or an integer array) are indexed by
    numpy: a dictionary walk over a million votes cost seconds."""
    if isinstance(item_ids, np.ndarray) and item_ids.dtype.kind in "iu" and item_ids.ndim == 1:
        distinct, index = first_seen_integers(item_ids)
        return tuple(distinct.tolist()), index
    if len(item_ids) and all(type(i) is int for i in item_ids):
        try:
            ids = np.asarray(item_ids, dtype=np.int64)
        except OverflowError:  # beyond int64: the dictionary walk below
            ids = None
        if ids is not None:
            distinct, index = first_seen_integers(ids)
            return tuple(distinct.tolist()), index
    index: dict[Hashable, int] = {}
    inverse = np.fromiter((index.setdefault(item, len(index)) for item in item_ids), dtype=np.int64)
    return tuple(index), inverse


def category_counts(
    item_ids: Sequence[Hashable],
    choices: Iterable[int] | np.ndarray,
    *,
    both_bad_as_tie: bool = True,
) -> tuple[tuple[Hashable, ...], np.ndarray]:
    """Count votes per item and preference code.

    Returns:
        ``(items, counts)`` with ``items`` in first-seen order and ``counts`` an int array of shape
        ``(len(items), 4)`` indexed by code. With ``both_bad_as_tie`` the both-bad votes are
        counted in the tie column (column 3 is then zero).

    Raises:
        ValueError: lengths differ or a choice is not a preference code.
    """
    codes = check_choices(choices)
    if len(item_ids) != codes.size:
        raise ValueError(f"got {len(item_ids)} item ids but {codes.size} choices")
    if both_bad_as_tie:
        codes = np.where(codes == BOTH_BAD, TIE, codes)
    items, inverse = index_items(item_ids)
    counts = np.bincount(inverse * 4 + codes, minlength=len(items) * 4).reshape(len(items), 4)
    return items, counts


def majority_codes(counts: np.ndarray, *, on_split: SplitPolicy = "tie") -> np.ndarray:
    """Plurality code per row of a ``(items, 4)`` count array; shared pluralities are splits.

    Returns a float array (``nan`` for a split when ``on_split == "none"`` or for an item without
    votes; :data:`TIE` for a split when ``on_split == "tie"``).
    """
    if on_split not in ("tie", "none"):
        raise ValueError(f"on_split must be 'tie' or 'none', got {on_split!r}")
    counts = np.asarray(counts)
    top = counts.max(axis=1)
    winners = (counts == top[:, None]).sum(axis=1)
    result = counts.argmax(axis=1).astype(np.float64)
    split = winners > 1
    result[split] = TIE if on_split == "tie" else np.nan
    result[top == 0] = np.nan
    return result


def majority_vote(
    item_ids: Sequence[Hashable],
    choices: Iterable[int] | np.ndarray,
    *,
    both_bad_as_tie: bool = True,
    on_split: SplitPolicy = "tie",
) -> dict[Hashable, int | None]:
    """Majority (plurality) preference per item.

    Args:
        item_ids: item id of each vote.
        choices: preference code of each vote.
        both_bad_as_tie: count both-bad votes as ties first (Chatbot Arena's "tie (bothbad)").
        on_split: when the plurality is shared (e.g. one base and one tuned vote), return
            :data:`TIE` (no system preferred, the default) or ``None`` (no majority).

    Returns:
        Dict from item id (first-seen order) to the majority code, or ``None``.

    Raises:
        ValueError: lengths differ, a choice is not a preference code, or ``on_split`` is unknown.
    """
    items, counts = category_counts(item_ids, choices, both_bad_as_tie=both_bad_as_tie)
    # Python floats and math.isnan: np.isnan per item costs seconds on 100,000 items.
    codes = majority_codes(counts, on_split=on_split).tolist()
    pairs = zip(items, codes, strict=True)
    return {item: (None if math.isnan(code) else int(code)) for item, code in pairs}


def votes_to_matrix(votes: Iterable[Vote]) -> ReliabilityMatrix:
    """Build the ``(raters, items)`` reliability matrix (``nan`` = no vote) from vote records.

    Raters and items keep their first-seen order.

    Raises:
        ValueError: a rater voted twice on the same item, or a choice is not a preference code.
    """
    votes = tuple(votes)
    raters, rater_index = index_items([v.rater for v in votes])
    items, item_index = index_items([v.item for v in votes])
    codes = check_choices([v.choice for v in votes])
    data = np.full((len(raters), len(items)), np.nan)
    flat = rater_index * max(len(items), 1) + item_index
    if has_duplicates(flat):
        dup = np.flatnonzero(np.bincount(flat) > 1)[0]
        rater, item = raters[dup // len(items)], items[dup % len(items)]
        raise ValueError(f"rater {rater!r} voted more than once on item {item!r}")
    data[rater_index, item_index] = codes
    return ReliabilityMatrix(data=data, raters=raters, items=items)
