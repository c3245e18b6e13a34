"""Reconciling human preferences with an LLM judge and with automatic metrics.

Judge scored as a human (the primary figure, :func:`judge_human_pairwise_agreement`): MT-Bench
(Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", sec. 4.2, table 2)
compares judge-human agreement with human-human agreement, so both must be counted the same
way. A human is scored by pairs: every pair of votes on the same item is one comparison. The
judge is scored likewise: every (judge verdict, human vote) pair on the same item is one
comparison. Ties: both-bad is a tie; "with ties" counts the tie as a class, "without ties"
drops every pair in which either side is a tie. Both agreements are ratios of per-item totals
(agreeing pairs over pairs), on the same items (those with a judge verdict), so the item is the
unit of inference: the confidence intervals, and that of the difference judge minus human,
come from one nonparametric bootstrap over items (Efron & Tibshirani 1993, ch. 6; Field &
Welsh 2007, "Bootstrapping clustered data", JRSS B 69(3): resampling whole clusters).

Why not the majority: scoring the judge against the human majority, with split items dropped,
compares it with a target less noisy than any single human, so an exchangeable extra rater
scores higher against the majority than humans score against each other (0.60 against 0.51 in
the study that raised this; about five points in the simulation of
``tests/scoring/stats/test_stats_reconcile.py``). :func:`judge_agreement` keeps that comparison
as a secondary figure.

Human majority vs judge verdict (per item, :func:`judge_agreement`), following MT-Bench:

* agreement with ties as a class (their setup S1);
* agreement without ties: only items where *neither* the human majority nor the judge is a tie
  (their setup S2, "w/o tie");
* Cohen's kappa (``sklearn.metrics.cohen_kappa_score``) and the confusion matrix, both over the
  fixed label order ``[base, tuned, tie]`` (both-bad is a tie).

Human preference vs metric deltas (per item; ``delta = metric(tuned) - metric(base)``, so a
positive delta favours tuned; negate lower-is-better metrics such as perplexity first):

* Spearman's rho and Kendall's tau-b (``scipy.stats``) between the delta and the human preference
  score (tuned = 1, tie = 0.5, base = 0; by default the majority's score, or a mean score given
  by the caller);
* sign agreement: the share of items with a decisive human majority and a non-zero delta where
  ``sign(delta)`` points at the majority's choice (ties excluded).

Disagreement detection lists the items worth a second look: raters split, no majority, or judge
and human majority disagreeing.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import ConstantInputWarning, kendalltau, spearmanr
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from scoring.stats._resampling import (
    BootstrapTarget,
    check_confidence,
    check_rng,
    joint_bootstrap,
    percentile_interval,
)
from scoring.stats.votes import (
    BASE,
    BOTH_BAD,
    TIE,
    TUNED,
    category_counts,
    check_choices,
    index_items,
    majority_codes,
    majority_vote,
    preference_scores,
)

__all__ = [
    "LABELS",
    "AgreementDifference",
    "JudgeHumanPairwise",
    "JudgeHumanPairwisePlan",
    "PairwiseAgreement",
    "REASON_JUDGE_DISAGREES",
    "REASON_NO_MAJORITY",
    "REASON_RATERS_SPLIT",
    "Disagreement",
    "DisagreementFlags",
    "JudgeAgreement",
    "MetricCorrelation",
    "disagreement_flags",
    "find_disagreements",
    "judge_agreement",
    "judge_human_pairwise_agreement",
    "judge_human_pairwise_plan",
    "majority_vote",
    "mean_preference",
    "metric_correlations",
]

LABELS: tuple[str, ...] = ("base", "tuned", "tie")
_LABEL_CODES = [BASE, TUNED, TIE]

REASON_RATERS_SPLIT = "raters_split"
REASON_NO_MAJORITY = "no_majority"
REASON_JUDGE_DISAGREES = "judge_disagrees"


@dataclass(frozen=True)
class JudgeAgreement:
    """Agreement between the human majority and an LLM judge over items.

    Attributes:
        n: items with both a human majority and a judge verdict.
        agreement: share of those items where they match (ties as a class).
        n_without_ties: items where neither side is a tie.
        agreement_without_ties: share of those where they match (MT-Bench "w/o tie").
        kappa: Cohen's kappa over labels ``[base, tuned, tie]`` (``nan`` if undefined).
        labels: the label order of ``confusion``.
        confusion: counts, rows = human majority, columns = judge, in ``labels`` order.
    """

    n: int
    agreement: float
    n_without_ties: int
    agreement_without_ties: float
    kappa: float
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class MetricCorrelation:
    """Association between one metric's per-item delta and the human preference.

    Attributes:
        metric: metric name.
        n: items with a finite delta and a human preference score.
        spearman, spearman_p: Spearman's rho and its two-sided p-value (``nan`` if undefined).
        kendall, kendall_p: Kendall's tau-b and its two-sided p-value (``nan`` if undefined).
        sign_agreement: share of decisive items where ``sign(delta)`` matches the majority.
        n_sign: items counted for ``sign_agreement`` (decisive majority, non-zero delta).
    """

    metric: str
    n: int
    spearman: float
    spearman_p: float
    kendall: float
    kendall_p: float
    sign_agreement: float
    n_sign: int


@dataclass(frozen=True)
class Disagreement:
    """An item needing attention, with the reasons (see the ``REASON_*`` constants)."""

    item: Hashable
    reasons: tuple[str, ...]


_NUMBER_TYPES = frozenset({int, float, type(None)})


def _optional_codes(values: Iterable[int | None], name: str) -> np.ndarray:
    """Codes as floats with ``nan`` for ``None``; both-bad collapsed into tie."""
    raw = list(values)
    out = None
    # Plain or numpy numbers and None (not bools): numpy reads None as nan and the codes are
    # checked as one array; anything else takes the element-wise path and its error message.
    kinds = set(map(type, raw))
    if all(k in _NUMBER_TYPES or (k.__module__ == "numpy" and k is not np.bool_) for k in kinds):
        try:
            out = np.array(raw, dtype=np.float64)
        except (TypeError, ValueError):
            out = None
    if out is not None and out.ndim == 1 and not np.isinf(out).any():
        check_choices(out[~np.isnan(out)], name=name)
        out[out == BOTH_BAD] = TIE
        return out
    present = [v for v in raw if v is not None and not (isinstance(v, float) and np.isnan(v))]
    check_choices(present, name=name)
    out = np.array(
        [np.nan if v is None or (isinstance(v, float) and np.isnan(v)) else float(v) for v in raw],
        dtype=np.float64,
    )
    out[out == BOTH_BAD] = TIE
    return out


def _align(
    human: Sequence[int | None] | Mapping[Hashable, int | None],
    judge: Sequence[int | None] | Mapping[Hashable, int | None],
) -> tuple[list[int | None], list[int | None]]:
    if isinstance(human, Mapping) != isinstance(judge, Mapping):
        raise ValueError("human and judge must both be sequences or both be mappings by item")
    if isinstance(human, Mapping):
        items = [item for item in human if item in judge]
        return [human[i] for i in items], [judge[i] for i in items]  # type: ignore[index]
    if len(human) != len(judge):
        raise ValueError(f"got {len(human)} human verdicts but {len(judge)} judge verdicts")
    return list(human), list(judge)


def judge_agreement(
    human: Sequence[int | None] | Mapping[Hashable, int | None],
    judge: Sequence[int | None] | Mapping[Hashable, int | None],
) -> JudgeAgreement:
    """Agreement between per-item human majority and judge verdicts.

    Args:
        human: human majority code per item (``None`` = no majority; such items are skipped),
            e.g. the values of :func:`majority_vote`.
        judge: judge verdict code per item (``None`` = no verdict; skipped). Sequences are aligned
            by position, mappings by item id (items in both).

    Raises:
        ValueError: a verdict is not a preference code, or the inputs cannot be aligned.
    """
    human_list, judge_list = _align(human, judge)
    h = _optional_codes(human_list, "human")
    j = _optional_codes(judge_list, "judge")
    both = ~np.isnan(h) & ~np.isnan(j)
    h, j = h[both].astype(np.int64), j[both].astype(np.int64)
    n = int(h.size)
    nan = float("nan")
    confusion = confusion_matrix(h, j, labels=_LABEL_CODES) if n else np.zeros((3, 3), int)
    no_tie = (h != TIE) & (j != TIE)
    kappa = nan
    if n:
        with warnings.catch_warnings():
            # A single shared label leaves kappa undefined; we report nan, as documented.
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            kappa = float(cohen_kappa_score(h, j, labels=_LABEL_CODES, replace_undefined_by=nan))
    return JudgeAgreement(
        n=n,
        agreement=float((h == j).mean()) if n else nan,
        n_without_ties=int(no_tie.sum()),
        agreement_without_ties=float((h[no_tie] == j[no_tie]).mean()) if no_tie.any() else nan,
        kappa=kappa,
        labels=LABELS,
        confusion=tuple(tuple(int(c) for c in row) for row in confusion),
    )


@dataclass(frozen=True)
class PairwiseAgreement:
    """Share of agreeing pairs of votes, with its item-clustered bootstrap interval.

    Attributes:
        agreement: agreeing pairs / pairs (``nan`` without pairs).
        ci_low, ci_high: percentile bootstrap interval over items (``nan`` without a
            bootstrap or without pairs).
        n_pairs: pairs counted.
        n_items: items contributing at least one pair.
    """

    agreement: float
    ci_low: float
    ci_high: float
    n_pairs: int
    n_items: int


@dataclass(frozen=True)
class AgreementDifference:
    """Judge-human minus human-human agreement, with its item-clustered bootstrap interval."""

    difference: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class JudgeHumanPairwise:
    """The judge scored as a human would be (see the module docstring).

    Attributes:
        judge_human: agreement of the judge's verdict with each human vote on the same item,
            ties as a class.
        human_human: agreement of every pair of human votes on the same item, ties as a class.
        difference: ``judge_human - human_human`` (paired over the same items).
        judge_human_without_ties, human_human_without_ties, difference_without_ties: the same
            with every pair dropped in which either side is a tie (both-bad is a tie).
        n_items: items with a judge verdict and at least one human vote (the bootstrap unit).
        n_votes: human votes on those items.
        confidence: the intervals' two-sided level.
        n_resamples: bootstrap resamples (0: no intervals).
    """

    judge_human: PairwiseAgreement
    human_human: PairwiseAgreement
    difference: AgreementDifference
    judge_human_without_ties: PairwiseAgreement
    human_human_without_ties: PairwiseAgreement
    difference_without_ties: AgreementDifference
    n_items: int
    n_votes: int
    confidence: float
    n_resamples: int


def _pairs(n: np.ndarray) -> np.ndarray:
    return n * (n - 1.0) / 2.0


def _agreement_features(counts: np.ndarray, judge: np.ndarray) -> np.ndarray:
    """Per-item totals, columns: judge-human agreeing pairs and pairs, human-human agreeing
    pairs and pairs; then the same four without ties. ``counts`` is ``(items, 3)`` over
    ``[base, tuned, tie]``; ``judge`` holds each item's code (0, 1 or 2)."""
    votes = counts.sum(axis=1)
    decisive = counts[:, :2].sum(axis=1)
    judge_matches = counts[np.arange(judge.size), judge]
    judge_decisive = (judge != TIE).astype(np.float64)
    return np.column_stack(
        [
            judge_matches,
            votes,
            _pairs(counts).sum(axis=1),
            _pairs(votes),
            judge_matches * judge_decisive,
            decisive * judge_decisive,
            _pairs(counts[:, :2]).sum(axis=1),
            _pairs(decisive),
        ]
    )


def _ratios(sums: np.ndarray) -> np.ndarray:
    """``(resamples, 8)`` sums to ``(resamples, 4)`` agreements: judge and human, with and
    without ties (``nan`` where a resample has no pairs)."""
    numerators, denominators = sums[:, 0::2], sums[:, 1::2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominators > 0, numerators / denominators, np.nan)


@dataclass(frozen=True)
class JudgeHumanPairwisePlan:
    """:func:`judge_human_pairwise_agreement` before its bootstrap: per-item totals (the
    bootstrap target, one row per item with a verdict) and the point estimates; :meth:`result`
    turns bootstrap replicates into a :class:`JudgeHumanPairwise`. Built by
    :func:`judge_human_pairwise_plan`, so the items can be resampled together with other
    item-level statistics (:func:`scoring.stats._resampling.joint_bootstrap`)."""

    target: BootstrapTarget
    point: np.ndarray
    n_votes: int

    def result(
        self, replicates: np.ndarray | None, *, confidence: float = 0.95
    ) -> JudgeHumanPairwise:
        """The agreements with the percentile intervals of ``replicates`` (``(resamples, 4)``;
        ``None``: no bootstrap)."""
        confidence = check_confidence(confidence)
        features, point = self.target.features, self.point
        nan = float("nan")
        intervals = [(nan, nan)] * 6
        n_resamples = 0
        if replicates is not None and replicates.shape[0]:
            n_resamples = int(replicates.shape[0])
            columns = [
                replicates[:, 0],
                replicates[:, 1],
                replicates[:, 0] - replicates[:, 1],
                replicates[:, 2],
                replicates[:, 3],
                replicates[:, 2] - replicates[:, 3],
            ]
            intervals = [percentile_interval(column, confidence) for column in columns]

        def agreement(k: int, interval: tuple[float, float]) -> PairwiseAgreement:
            return PairwiseAgreement(
                agreement=float(point[k]),
                ci_low=interval[0],
                ci_high=interval[1],
                n_pairs=int(round(features[:, 2 * k + 1].sum())),
                n_items=int((features[:, 2 * k + 1] > 0).sum()),
            )

        def difference(k: int, interval: tuple[float, float]) -> AgreementDifference:
            return AgreementDifference(
                difference=float(point[k] - point[k + 1]), ci_low=interval[0], ci_high=interval[1]
            )

        return JudgeHumanPairwise(
            judge_human=agreement(0, intervals[0]),
            human_human=agreement(1, intervals[1]),
            difference=difference(0, intervals[2]),
            judge_human_without_ties=agreement(2, intervals[3]),
            human_human_without_ties=agreement(3, intervals[4]),
            difference_without_ties=difference(2, intervals[5]),
            n_items=int(features.shape[0]),
            n_votes=self.n_votes,
            confidence=confidence,
            n_resamples=n_resamples,
        )


def judge_human_pairwise_plan(
    item_ids: Sequence[Hashable] | np.ndarray,
    codes: Iterable[int] | np.ndarray,
    judge: Mapping[Hashable, int | None],
) -> JudgeHumanPairwisePlan:
    """:func:`judge_human_pairwise_agreement` before its bootstrap (see
    :class:`JudgeHumanPairwisePlan`). The target's units are the item ids when they are
    integers (so other statistics of the same items can share its resamples), else the items'
    first-seen positions.

    Raises:
        ValueError: lengths differ, or a code or verdict is not a preference code.
    """
    human = check_choices(codes, name="codes")
    if len(item_ids) != human.size:
        raise ValueError(f"got {len(item_ids)} item ids but {human.size} codes")
    items, counts = category_counts(item_ids, human, both_bad_as_tie=True)
    verdicts = _optional_codes([judge.get(item) for item in items], "judge")
    keep = ~np.isnan(verdicts)
    counts = counts[keep, :3].astype(np.float64)
    judged = verdicts[keep].astype(np.int64)
    features = _agreement_features(counts, judged)
    point = _ratios(features.sum(axis=0, keepdims=True))[0]
    units = np.flatnonzero(keep)  # positions, unless the ids are integers numpy can hold
    if all(type(item) is int for item in items):
        with contextlib.suppress(OverflowError):
            units = np.asarray(items, dtype=np.int64)[keep]
    return JudgeHumanPairwisePlan(
        target=BootstrapTarget(units, features, _ratios), point=point, n_votes=int(counts.sum())
    )


def judge_human_pairwise_agreement(
    item_ids: Sequence[Hashable],
    codes: Iterable[int] | np.ndarray,
    judge: Mapping[Hashable, int | None],
    *,
    n_resamples: int = 0,
    rng: np.random.Generator | None = None,
    confidence: float = 0.95,
) -> JudgeHumanPairwise:
    """Score the judge exactly as a human is scored: pairwise, against each human vote.

    Args:
        item_ids: item of each human vote.
        codes: preference code of each human vote (0 base, 1 tuned, 2 tie, 3 both bad).
        judge: the judge's verdict code per item id (``None`` or NaN: no verdict). Only items
            with a verdict and at least one human vote count, for both agreements. Not mutated.
        n_resamples: bootstrap resamples over items for the intervals (0: none).
        rng: generator for the bootstrap; required when ``n_resamples > 0`` (pass one with a
            fixed seed for a reproducible report).
        confidence: two-sided level of the percentile intervals.

    Returns:
        A :class:`JudgeHumanPairwise`.

    Raises:
        ValueError: lengths differ, a code or verdict is not a preference code, a bad
            ``n_resamples`` / ``confidence``, or a bootstrap without ``rng``.
    """
    rng = check_rng(rng, n_resamples)
    confidence = check_confidence(confidence)
    plan = judge_human_pairwise_plan(item_ids, codes, judge)
    replicates = None
    if rng is not None and plan.target.features.shape[0]:
        replicates = joint_bootstrap([plan.target], n_resamples, rng)[0]
    return plan.result(replicates, confidence=confidence)


def mean_preference(
    item_ids: Sequence[Hashable], choices: Iterable[int] | np.ndarray
) -> dict[Hashable, float]:
    """Mean human preference score per item (tuned = 1, tie = both bad = 0.5, base = 0).

    Raises:
        ValueError: lengths differ or a choice is not a preference code.
    """
    scores = preference_scores(choices)
    if len(item_ids) != scores.size:
        raise ValueError(f"got {len(item_ids)} item ids but {scores.size} choices")
    items, inverse = index_items(item_ids)
    sums = np.bincount(inverse, weights=scores, minlength=len(items))
    counts = np.bincount(inverse, minlength=len(items))
    return {item: float(s / c) for item, s, c in zip(items, sums, counts, strict=True)}


def _correlation(
    func: Callable[[np.ndarray, np.ndarray], Any], x: np.ndarray, y: np.ndarray
) -> tuple[float, float]:
    if x.size < 2:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        # Constant input makes the coefficient undefined; scipy warns and returns nan, as we do.
        warnings.simplefilter("ignore", ConstantInputWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = func(x, y)
    return float(result.statistic), float(result.pvalue)


def metric_correlations(
    human_majority: Sequence[int | None],
    metric_deltas: Mapping[str, Sequence[float] | np.ndarray],
    *,
    human_preference: Sequence[float] | np.ndarray | None = None,
) -> dict[str, MetricCorrelation]:
    """Correlate each metric's per-item delta with the human preference.

    Args:
        human_majority: majority code per item (``None`` = no majority).
        metric_deltas: per metric name, ``metric(tuned) - metric(base)`` per item (``nan`` =
            missing), aligned with ``human_majority``.
        human_preference: per-item preference score in [0, 1] for the correlations (e.g.
            :func:`mean_preference`); defaults to the majority's score (tuned 1, tie 0.5, base 0).

    Returns:
        Dict from metric name to :class:`MetricCorrelation`, in the input order.

    Raises:
        ValueError: lengths differ, a code is not a preference code, or a preference score lies
            outside [0, 1].
    """
    majority = _optional_codes(human_majority, "human_majority")
    n_items = majority.size
    if human_preference is None:
        preference = np.full(n_items, np.nan)
        known = ~np.isnan(majority)
        preference[known] = np.array([0.0, 1.0, 0.5])[majority[known].astype(np.int64)]
    else:
        preference = np.asarray(human_preference, dtype=np.float64)
        if preference.shape != (n_items,):
            raise ValueError("human_preference must have one score per item")
        if np.any((preference < 0) | (preference > 1)):
            raise ValueError("human_preference scores must lie in [0, 1]")
    decisive = (majority == BASE) | (majority == TUNED)

    out: dict[str, MetricCorrelation] = {}
    for name, values in metric_deltas.items():
        delta = np.asarray(values, dtype=np.float64)
        if delta.shape != (n_items,):
            raise ValueError(f"metric {name!r} has {delta.size} deltas for {n_items} items")
        usable = np.isfinite(delta) & np.isfinite(preference)
        rho, rho_p = _correlation(spearmanr, delta[usable], preference[usable])
        tau, tau_p = _correlation(kendalltau, delta[usable], preference[usable])
        signed = decisive & np.isfinite(delta) & (delta != 0)
        hits = (delta[signed] > 0) == (majority[signed] == TUNED)
        out[name] = MetricCorrelation(
            metric=name,
            n=int(usable.sum()),
            spearman=rho,
            spearman_p=rho_p,
            kendall=tau,
            kendall_p=tau_p,
            sign_agreement=float(hits.mean()) if hits.size else float("nan"),
            n_sign=int(hits.size),
        )
    return out


@dataclass(frozen=True)
class DisagreementFlags:
    """Per item (first-seen order): its vote counts and which disagreement reasons apply.

    Attributes:
        items: the item ids.
        counts: ``(items, 4)`` vote counts by code (both-bad apart from ties).
        raters_split, no_majority, judge_disagrees: one flag per item per reason.
    """

    items: tuple[Hashable, ...]
    counts: np.ndarray
    raters_split: np.ndarray
    no_majority: np.ndarray
    judge_disagrees: np.ndarray

    @property
    def flagged(self) -> np.ndarray:
        """Items with at least one reason."""
        return self.raters_split | self.no_majority | self.judge_disagrees

    def reasons(self, k: int) -> tuple[str, ...]:
        """The reasons of item ``k``, in the order of :func:`find_disagreements`."""
        found = (
            (self.raters_split[k], REASON_RATERS_SPLIT),
            (self.no_majority[k], REASON_NO_MAJORITY),
            (self.judge_disagrees[k], REASON_JUDGE_DISAGREES),
        )
        return tuple(reason for flag, reason in found if flag)


def disagreement_flags(
    item_ids: Sequence[Hashable] | np.ndarray,
    choices: Iterable[int] | np.ndarray,
    *,
    judge: Mapping[Hashable, int | None] | None = None,
) -> DisagreementFlags:
    """The reasons of :func:`find_disagreements` for every item at once, as arrays.

    Raises:
        ValueError: lengths differ or a code is not a preference code.
    """
    items, counts = category_counts(item_ids, choices, both_bad_as_tie=False)
    collapsed = counts.copy()  # both-bad is a tie for the majority and the split
    collapsed[:, TIE] += collapsed[:, BOTH_BAD]
    collapsed[:, BOTH_BAD] = 0
    majority = majority_codes(collapsed, on_split="none")
    verdict = np.full(len(items), np.nan)
    if judge is not None:
        _optional_codes(judge.values(), "judge")  # every verdict must be a code
        verdict = _optional_codes([judge.get(item) for item in items], "judge")
    judged = ~np.isnan(majority) & ~np.isnan(verdict)
    disagrees = np.zeros(len(items), dtype=bool)
    disagrees[judged] = verdict[judged] != majority[judged]
    return DisagreementFlags(
        items=items,
        counts=counts,
        raters_split=(collapsed > 0).sum(axis=1) > 1,
        no_majority=np.isnan(majority),
        judge_disagrees=disagrees,
    )


def find_disagreements(
    item_ids: Sequence[Hashable],
    choices: Iterable[int] | np.ndarray,
    *,
    judge: Mapping[Hashable, int | None] | None = None,
) -> list[Disagreement]:
    """Items where raters split or where the judge and the human majority disagree.

    Reasons: ``raters_split`` (raters gave different preferences; both-bad counts as tie),
    ``no_majority`` (the plurality is shared), ``judge_disagrees`` (the judge's verdict differs
    from the human majority; only checked where both exist).

    Args:
        item_ids: item of each vote.
        choices: preference code of each vote.
        judge: judge verdict per item id (optional).

    Returns:
        List of :class:`Disagreement` in first-seen item order (items without a reason omitted).

    Raises:
        ValueError: lengths differ or a code is not a preference code.
    """
    flags = disagreement_flags(item_ids, choices, judge=judge)
    return [
        Disagreement(item=flags.items[k], reasons=flags.reasons(k))
        for k in np.flatnonzero(flags.flagged).tolist()
    ]
