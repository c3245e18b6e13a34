"""Human majority vs LLM judge, human preference vs metric deltas, disagreements."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr
from sklearn.metrics import cohen_kappa_score

from scoring.stats.reconcile import (
    LABELS,
    REASON_JUDGE_DISAGREES,
    REASON_NO_MAJORITY,
    REASON_RATERS_SPLIT,
    find_disagreements,
    judge_agreement,
    majority_vote,
    mean_preference,
    metric_correlations,
)
from scoring.stats.votes import BASE, BOTH_BAD, TIE, TUNED

HUMAN = [TUNED, TUNED, BASE, TIE, TIE, BASE, TUNED, None]
JUDGE = [TUNED, BASE, BASE, TIE, TUNED, BOTH_BAD, TUNED, TUNED]


def test_mt_bench_agreement_with_and_without_ties() -> None:
    result = judge_agreement(HUMAN, JUDGE)
    # 7 comparable items (the last has no human majority), 4 agree.
    assert result.n == 7
    assert result.agreement == pytest.approx(4 / 7)
    # Without ties: drop items where either side is a tie (items 3, 4, 5; both-bad is a tie).
    assert result.n_without_ties == 4
    assert result.agreement_without_ties == pytest.approx(3 / 4)
    assert result.agreement_without_ties > result.agreement
    assert result.labels == LABELS == ("base", "tuned", "tie")
    assert result.confusion == ((1, 0, 1), (1, 2, 0), (0, 1, 1))
    h = [BASE if c == BASE else TUNED if c == TUNED else TIE for c in HUMAN[:7]]
    j = [TIE if c == BOTH_BAD else c for c in JUDGE[:7]]
    assert result.kappa == pytest.approx(cohen_kappa_score(h, j, labels=[0, 1, 2]))


def test_judge_agreement_accepts_mappings_and_handles_degenerate_cases() -> None:
    human = {"a": TUNED, "b": BASE, "c": None}
    judge = {"b": BASE, "a": TUNED, "d": TIE}
    result = judge_agreement(human, judge)
    assert (result.n, result.agreement, result.agreement_without_ties) == (2, 1.0, 1.0)
    one_label = judge_agreement([TUNED, TUNED], [TUNED, TUNED])
    assert one_label.agreement == 1.0 and np.isnan(one_label.kappa)
    empty = judge_agreement([None], [TUNED])
    assert empty.n == 0 and np.isnan(empty.agreement)
    assert empty.confusion == ((0, 0, 0), (0, 0, 0), (0, 0, 0))
    with pytest.raises(ValueError, match="both be"):
        judge_agreement({"a": 1}, [1])
    with pytest.raises(ValueError, match="verdicts"):
        judge_agreement([1, 0], [1])
    with pytest.raises(ValueError, match="preference codes"):
        judge_agreement([7], [1])


def test_metric_correlations() -> None:
    rng = np.random.default_rng(0)
    majority = [TUNED, BASE, TUNED, TIE, BASE, TUNED, None, TUNED, BASE, TIE]
    delta_good = np.array([0.3, -0.2, 0.1, 0.0, -0.4, 0.2, 0.5, 0.05, -0.1, 0.01])
    delta_noise = rng.normal(size=10)
    delta_noise[2] = np.nan
    result = metric_correlations(majority, {"good": delta_good, "noise": delta_noise})
    assert list(result) == ["good", "noise"]
    good = result["good"]
    scores = np.array([1, 0, 1, 0.5, 0, 1, np.nan, 1, 0, 0.5])
    keep = ~np.isnan(scores)
    assert good.n == 9
    assert good.spearman == pytest.approx(spearmanr(delta_good[keep], scores[keep]).statistic)
    assert good.kendall == pytest.approx(kendalltau(delta_good[keep], scores[keep]).statistic)
    assert good.kendall_p == pytest.approx(kendalltau(delta_good[keep], scores[keep]).pvalue)
    assert (good.sign_agreement, good.n_sign) == (1.0, 7)  # ties, None excluded
    assert result["noise"].n == 8


def test_metric_correlations_with_mean_preference_and_sign_errors() -> None:
    items = ["a", "a", "b", "b", "c", "c", "c"]
    choices = [TUNED, TUNED, BASE, TIE, BASE, BASE, TUNED]
    pref = mean_preference(items, choices)
    assert pref == {"a": 1.0, "b": 0.25, "c": pytest.approx(1 / 3)}
    majority = list(majority_vote(items, choices).values())
    assert majority == [TUNED, TIE, BASE]  # b: base vs tie split -> tie
    result = metric_correlations(
        majority, {"m": [1.0, -1.0, 2.0]}, human_preference=list(pref.values())
    )
    assert (result["m"].sign_agreement, result["m"].n_sign) == (0.5, 2)
    constant = metric_correlations(majority, {"flat": [1.0, 1.0, 1.0]})["flat"]
    assert np.isnan(constant.spearman) and np.isnan(constant.kendall)
    with pytest.raises(ValueError, match="deltas"):
        metric_correlations(majority, {"m": [1.0]})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metric_correlations(majority, {"m": [1.0, 1.0, 1.0]}, human_preference=[2.0, 0, 0])


def test_find_disagreements() -> None:
    items = [1, 1, 1, 2, 2, 3, 3, 4, 4]
    choices = [TUNED, TUNED, BASE, TUNED, BASE, TIE, BOTH_BAD, BASE, BASE]
    judge = {1: TUNED, 3: BASE, 4: TUNED}
    found = find_disagreements(items, choices, judge=judge)
    assert [(d.item, d.reasons) for d in found] == [
        (1, (REASON_RATERS_SPLIT,)),
        (2, (REASON_RATERS_SPLIT, REASON_NO_MAJORITY)),
        (3, (REASON_JUDGE_DISAGREES,)),  # tie and both-bad agree; judge says base
        (4, (REASON_JUDGE_DISAGREES,)),
    ]
    assert [d.item for d in find_disagreements(items, choices)] == [1, 2]
