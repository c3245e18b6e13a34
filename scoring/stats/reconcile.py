"""Reconciling human preferences with an LLM judge and with automatic metrics.

Human majority vs judge verdict (per item), following MT-Bench's agreement analysis (Zheng et al.
2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", sec. 4.2):

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

import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import ConstantInputWarning, kendalltau, spearmanr
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score, confusion_matrix

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
    "REASON_JUDGE_DISAGREES",
    "REASON_NO_MAJORITY",
    "REASON_RATERS_SPLIT",
    "Disagreement",
    "JudgeAgreement",
    "MetricCorrelation",
    "find_disagreements",
    "judge_agreement",
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


def _optional_codes(values: Iterable[int | None], name: str) -> np.ndarray:
    """Codes as floats with ``nan`` for ``None``; both-bad collapsed into tie."""
    raw = list(values)
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
    items, counts = category_counts(item_ids, choices)
    majority = majority_codes(counts, on_split="none")
    judged: dict[Hashable, float] = {}
    if judge is not None:
        keys = [k for k, v in judge.items() if v is not None]
        codes = _optional_codes([judge[k] for k in keys], "judge")
        judged = dict(zip(keys, codes.tolist(), strict=True))
    out = []
    for item, row, maj in zip(items, counts, majority, strict=True):
        reasons = []
        if (row > 0).sum() > 1:
            reasons.append(REASON_RATERS_SPLIT)
        if np.isnan(maj):
            reasons.append(REASON_NO_MAJORITY)
        elif item in judged and judged[item] != maj:
            reasons.append(REASON_JUDGE_DISAGREES)
        if reasons:
            out.append(Disagreement(item=item, reasons=tuple(reasons)))
    return out
