"""Per-rater quality statistics for A/B preference studies, and flags against study thresholds.

For each rater:

* votes and median time per vote (seconds): very fast raters are a classic sign of careless
  responding (Meade & Craig 2012, "Identifying careless responses in survey data").
* Position bias: the share of decisive votes that chose the system shown in the left slot, with an
  exact two-sided binomial test against 1/2 (``scipy.stats.binomtest``). Order effects in pairwise
  comparisons are well documented (e.g. Zheng et al. 2023 for LLM judges; the same holds for
  people). Ties and both-bad votes pick no slot and are left out.
* Agreement with the leave-one-out majority: for each of the rater's votes, the plurality of the
  *other* raters' votes on the same item (both-bad counted as tie, as in :mod:`.votes`); votes
  whose item has no other vote or whose leave-one-out plurality is shared are excluded. This is the
  per-worker agreement used for crowd-worker screening (Snow et al. 2008, "Cheap and fast -- but is
  it good?"); leaving the rater out avoids rewarding them for agreeing with themselves.
* Accuracy on gold items (known-answer control items).

Flags compare these against :class:`RaterThresholds`. A rate-based flag only fires once the rater
has at least ``min_votes_to_judge`` relevant votes, so a new rater is not flagged on noise.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from scoring.stats.votes import (
    BASE,
    BOTH_BAD,
    PREFERENCE_CODES,
    TIE,
    TUNED,
    Vote,
    check_choices,
    index_items,
)

FLAG_TOO_FAST = "too_fast"
FLAG_POSITION_BIAS = "position_bias"
FLAG_LOW_MAJORITY_AGREEMENT = "low_majority_agreement"
FLAG_LOW_GOLD_ACCURACY = "low_gold_accuracy"


@dataclass(frozen=True)
class RaterThresholds:
    """Study thresholds for flagging raters; ``None`` disables a check.

    Attributes:
        min_votes_to_judge: minimum relevant votes before a rate-based flag may fire (for the time
            flag: votes with a time; position bias: decisive votes with a known left slot;
            majority agreement: votes with a leave-one-out majority; gold: gold votes).
        min_median_seconds: flag raters whose median time per vote is below this (seconds).
        position_bias_p_value: flag raters whose left-slot binomial test has a p-value below this.
        min_majority_agreement: flag raters whose leave-one-out majority agreement is below this.
        min_gold_accuracy: flag raters whose gold accuracy is below this.
    """

    min_votes_to_judge: int = 10
    min_median_seconds: float | None = None
    position_bias_p_value: float | None = 0.01
    min_majority_agreement: float | None = None
    min_gold_accuracy: float | None = None

    def __post_init__(self) -> None:
        if self.min_votes_to_judge < 1:
            raise ValueError("min_votes_to_judge must be >= 1")
        for name in ("position_bias_p_value", "min_majority_agreement", "min_gold_accuracy"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.min_median_seconds is not None and self.min_median_seconds < 0:
            raise ValueError("min_median_seconds must be >= 0")


@dataclass(frozen=True)
class RaterReport:
    """Quality statistics of one rater (rates are proportions in [0, 1]; ``nan`` = no data).

    Attributes:
        rater: rater id.
        n_votes: all votes.
        median_seconds: median time per vote over votes with a time (seconds).
        n_timed: votes with a time.
        left_rate: share of decisive votes (with a known left slot) choosing the left slot.
        n_left_decisions: those decisive votes.
        left_p_value: exact two-sided binomial test of ``left_rate`` against 0.5 (1.0 if none).
        majority_agreement: agreement with the leave-one-out majority.
        n_majority: votes with a leave-one-out majority.
        gold_accuracy: share of gold votes matching the expected answer.
        n_gold: votes on gold items.
        flags: names of the thresholds the rater fails (empty if none).
    """

    rater: Hashable
    n_votes: int
    median_seconds: float
    n_timed: int
    left_rate: float
    n_left_decisions: int
    left_p_value: float
    majority_agreement: float
    n_majority: int
    gold_accuracy: float
    n_gold: int
    flags: tuple[str, ...]


def _leave_one_out_agreement(items: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per vote: whether a leave-one-out majority exists, and whether the vote matches it."""
    collapsed = np.where(codes == BOTH_BAD, TIE, codes)
    n_items = int(items.max()) + 1 if items.size else 0
    counts = np.bincount(items * 4 + collapsed, minlength=n_items * 4).reshape(n_items, 4)
    # The other votes on an item depend only on the item and on the code left out: decide both
    # flags per (item, code) once, then look each vote up (no per-vote copy of its item's counts).
    has_majority = np.zeros((n_items, 4), dtype=bool)
    agrees = np.zeros((n_items, 4), dtype=bool)
    for code in (BASE, TUNED, TIE):
        others = counts.copy()
        others[:, code] -= 1
        top = others.max(axis=1)
        unique_top = (others == top[:, None]).sum(axis=1) == 1
        has_majority[:, code] = (top > 0) & unique_top
        agrees[:, code] = has_majority[:, code] & (others.argmax(axis=1) == code)
    return has_majority[items, collapsed], agrees[items, collapsed]


def _gold_match(
    items: Sequence[Hashable] | np.ndarray,
    codes: np.ndarray,
    gold: Mapping[Hashable, int | Collection[int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Per vote: whether the item is gold, and whether the vote matches an accepted answer."""
    accepted: dict[Hashable, frozenset[int]] = {}
    codes_set = frozenset(PREFERENCE_CODES)
    for item, expected in gold.items():
        answers = [expected] if isinstance(expected, int | np.integer) else list(expected)
        if all(type(a) is int and a in codes_set for a in answers):  # the common case, quickly
            accepted[item] = frozenset(answers)
        else:
            accepted[item] = frozenset(
                check_choices(answers, name=f"gold answer for item {item!r}").tolist()
            )
    is_gold = np.zeros(codes.size, dtype=bool)
    correct = np.zeros(codes.size, dtype=bool)
    if not accepted:
        return is_gold, correct
    if (
        isinstance(items, np.ndarray)
        and items.dtype.kind == "i"
        and all(isinstance(key, int | np.integer) and -(2**63) <= key < 2**63 for key in accepted)
    ):
        # Integer ids (database keys): look every vote up at once in the sorted gold ids.
        keys = np.array(sorted(accepted), dtype=np.int64)
        answers = np.zeros((keys.size, len(PREFERENCE_CODES)), dtype=bool)
        for row, key in enumerate(keys.tolist()):
            answers[row, sorted(accepted[key])] = True
        row_of = np.minimum(np.searchsorted(keys, items), keys.size - 1)
        is_gold = keys[row_of] == items
        correct[is_gold] = answers[row_of[is_gold], codes[is_gold]]
        return is_gold, correct
    for i, (item, code) in enumerate(zip(items, codes.tolist(), strict=True)):
        answers = accepted.get(item)
        if answers is not None:
            is_gold[i] = True
            correct[i] = code in answers
    return is_gold, correct


def _rate(hits: np.ndarray) -> float:
    return float(hits.mean()) if hits.size else float("nan")


def rater_reports(
    votes: Iterable[Vote],
    *,
    gold: Mapping[Hashable, int | Collection[int]] | None = None,
    thresholds: RaterThresholds | None = None,
) -> tuple[RaterReport, ...]:
    """Quality statistics and flags for every rater, in first-seen order.

    Args:
        votes: vote records (rater, item, choice, left slot, seconds).
        gold: expected answer per gold item: a preference code, or a collection of accepted codes
            (e.g. ``{TIE, BOTH_BAD}``).
        thresholds: study thresholds (defaults: :class:`RaterThresholds()`, which only checks
            position bias at p < 0.01).

    Raises:
        ValueError: a bad preference code, a left slot other than base/tuned/None, a negative or
            non-finite time, or a gold answer that is not a preference code.
    """
    votes = tuple(votes)
    if not votes:
        return ()
    return rater_reports_from_columns(
        raters=[v.rater for v in votes],
        items=[v.item for v in votes],
        codes=[v.choice for v in votes],
        left=[-1 if v.left is None else v.left for v in votes],
        seconds=[np.nan if v.seconds is None else float(v.seconds) for v in votes],
        gold=gold,
        thresholds=thresholds,
    )


def rater_reports_from_columns(
    *,
    raters: Sequence[Hashable] | np.ndarray,
    items: Sequence[Hashable] | np.ndarray,
    codes: Sequence[int] | np.ndarray,
    left: Sequence[int] | np.ndarray,
    seconds: Sequence[float] | np.ndarray,
    gold: Mapping[Hashable, int | Collection[int]] | None = None,
    thresholds: RaterThresholds | None = None,
) -> tuple[RaterReport, ...]:
    """:func:`rater_reports` on columns, one entry per vote: rater and item ids (integer arrays
    are indexed by numpy), preference code, left slot (``-1`` = unknown) and seconds (``nan`` =
    unknown). A million votes need no Python object per vote this way.

    Raises:
        ValueError: as :func:`rater_reports`, or columns of different lengths.
    """
    thresholds = thresholds if thresholds is not None else RaterThresholds()
    gold = gold if gold is not None else {}
    codes = check_choices(codes)
    if not codes.size:
        return ()
    left = np.asarray(left, dtype=np.int64)
    seconds = np.asarray(seconds, dtype=np.float64)
    if not (len(raters) == len(items) == left.size == seconds.size == codes.size):
        raise ValueError("raters, items, codes, left and seconds must have one entry per vote")
    raters, rater_index = index_items(raters)
    _, item_index = index_items(items)

    if not np.isin(left, (-1, BASE, TUNED)).all():
        raise ValueError("Vote.left must be BASE (0), TUNED (1) or None")
    if np.isinf(seconds).any() or (seconds < 0).any():
        raise ValueError("Vote.seconds must be a finite, non-negative number of seconds or None")

    has_majority, agrees = _leave_one_out_agreement(item_index, codes)
    is_gold, gold_correct = _gold_match(items, codes, gold)
    decisive_left = (left >= 0) & np.isin(codes, (BASE, TUNED))
    chose_left = codes == left

    # Group the votes by rater once (stable sort) instead of masking all votes per rater.
    order = np.argsort(rater_index, kind="stable")
    bounds = np.searchsorted(rater_index[order], np.arange(len(raters) + 1))
    reports = []
    need = thresholds.min_votes_to_judge
    for r, rater in enumerate(raters):
        mine = order[bounds[r] : bounds[r + 1]]
        times = seconds[mine]
        times = times[~np.isnan(times)]
        median_seconds = float(np.median(times)) if times.size else float("nan")
        left_hits = chose_left[mine][decisive_left[mine]]
        left_p = (
            float(binomtest(int(left_hits.sum()), left_hits.size, 0.5).pvalue)
            if left_hits.size
            else 1.0
        )
        majority_hits = agrees[mine][has_majority[mine]]
        gold_hits = gold_correct[mine][is_gold[mine]]

        flags = []
        if (
            thresholds.min_median_seconds is not None
            and times.size >= need
            and median_seconds < thresholds.min_median_seconds
        ):
            flags.append(FLAG_TOO_FAST)
        if (
            thresholds.position_bias_p_value is not None
            and left_hits.size >= need
            and left_p < thresholds.position_bias_p_value
        ):
            flags.append(FLAG_POSITION_BIAS)
        if (
            thresholds.min_majority_agreement is not None
            and majority_hits.size >= need
            and majority_hits.mean() < thresholds.min_majority_agreement
        ):
            flags.append(FLAG_LOW_MAJORITY_AGREEMENT)
        if (
            thresholds.min_gold_accuracy is not None
            and gold_hits.size >= need
            and gold_hits.mean() < thresholds.min_gold_accuracy
        ):
            flags.append(FLAG_LOW_GOLD_ACCURACY)

        reports.append(
            RaterReport(
                rater=rater,
                n_votes=int(mine.size),
                median_seconds=median_seconds,
                n_timed=int(times.size),
                left_rate=_rate(left_hits),
                n_left_decisions=int(left_hits.size),
                left_p_value=left_p,
                majority_agreement=_rate(majority_hits),
                n_majority=int(majority_hits.size),
                gold_accuracy=_rate(gold_hits),
                n_gold=int(gold_hits.size),
                flags=tuple(flags),
            )
        )
    return tuple(reports)


def flagged_raters(reports: Iterable[RaterReport]) -> frozenset[Hashable]:
    """Ids of the raters with at least one flag."""
    return frozenset(report.rater for report in reports if report.flags)


def drop_raters(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    rater_ids: Sequence[Hashable],
    drop: Collection[Hashable],
) -> tuple[np.ndarray, tuple[Hashable, ...]]:
    """Remove the rows of ``drop`` raters from a ``(raters, items)`` matrix.

    Items left without any rating keep their (all-``nan``) column, so item positions stay aligned
    with the caller's item ids.

    Returns:
        ``(matrix, kept_rater_ids)``; the matrix is a new array, the input is not modified.

    Raises:
        ValueError: the matrix is not 2-D or ``rater_ids`` does not match its rows.
    """
    data = np.asarray(reliability_data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"reliability_data must be 2-D (raters, items), got shape {data.shape}")
    if len(rater_ids) != data.shape[0]:
        raise ValueError(f"got {len(rater_ids)} rater ids for {data.shape[0]} matrix rows")
    drop = set(drop)
    keep = np.array([rater not in drop for rater in rater_ids], dtype=bool)
    kept = tuple(rater for rater, k in zip(rater_ids, keep, strict=True) if k)
    return data[keep].copy(), kept
