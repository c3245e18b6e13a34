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
    judge_human_pairwise_agreement,
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


# ------------------------------------------------------------------------------------------
# The judge scored as a human: pairwise against each human vote
# ------------------------------------------------------------------------------------------


def test_pairwise_agreement_counted_by_hand() -> None:
    item_ids = ["a", "a", "a", "b", "b", "b", "c", "d", "d"]
    codes = [TUNED, TUNED, BASE, TIE, BOTH_BAD, TUNED, BASE, TUNED, TUNED]
    judge = {"a": TUNED, "b": BASE, "c": BASE, "d": None, "e": TUNED}
    result = judge_human_pairwise_agreement(item_ids, codes, judge)
    # Items a, b, c count (d has no verdict, e no human vote): 7 votes.
    assert (result.n_items, result.n_votes, result.n_resamples) == (3, 7, 0)
    # Humans: a has 3 pairs, 1 agreeing (tuned-tuned); b has 3 pairs, 1 agreeing (tie and
    # both-bad are both ties); c has one vote, no pair.
    assert result.human_human.agreement == pytest.approx(2 / 6)
    assert (result.human_human.n_pairs, result.human_human.n_items) == (6, 2)
    # Judge: a agrees with 2 of 3 votes, b with 0 of 3, c with 1 of 1.
    assert result.judge_human.agreement == pytest.approx(3 / 7)
    assert (result.judge_human.n_pairs, result.judge_human.n_items) == (7, 3)
    assert result.difference.difference == pytest.approx(3 / 7 - 2 / 6)
    # Without ties: humans keep a's 3 pairs (1 agreeing); b's decisive votes form no pair.
    assert result.human_human_without_ties.agreement == pytest.approx(1 / 3)
    # The judge keeps a (2 of 3), b's one tuned vote (0 of 1) and c (1 of 1).
    assert result.judge_human_without_ties.agreement == pytest.approx(3 / 5)
    assert result.judge_human_without_ties.n_pairs == 5
    assert result.difference_without_ties.difference == pytest.approx(3 / 5 - 1 / 3)
    assert np.isnan(result.difference.ci_low) and np.isnan(result.judge_human.ci_high)
    # A tie verdict has no pair without ties.
    tie = judge_human_pairwise_agreement(["x", "x"], [TUNED, TUNED], {"x": TIE})
    assert tie.judge_human.agreement == 0.0
    assert np.isnan(tie.judge_human_without_ties.agreement)
    assert tie.judge_human_without_ties.n_pairs == 0


def test_human_human_matches_counting_every_pair() -> None:
    rng = np.random.default_rng(3)
    item_ids = rng.integers(0, 40, 200).tolist()
    codes = rng.integers(0, 4, 200)
    judge = {i: int(rng.integers(0, 4)) for i in range(40)}
    result = judge_human_pairwise_agreement(item_ids, codes, judge)
    tie = np.where(codes == BOTH_BAD, TIE, codes)
    agree = pairs = agree_nt = pairs_nt = j_agree = j_pairs = j_agree_nt = j_pairs_nt = 0
    for x in range(len(codes)):
        j = TIE if judge[item_ids[x]] == BOTH_BAD else judge[item_ids[x]]
        j_pairs += 1
        j_agree += tie[x] == j
        if TIE not in (tie[x], j):
            j_pairs_nt += 1
            j_agree_nt += tie[x] == j
        for y in range(x + 1, len(codes)):
            if item_ids[x] != item_ids[y]:
                continue
            pairs += 1
            agree += tie[x] == tie[y]
            if TIE not in (tie[x], tie[y]):
                pairs_nt += 1
                agree_nt += tie[x] == tie[y]
    assert result.human_human.agreement == pytest.approx(agree / pairs)
    assert result.human_human_without_ties.agreement == pytest.approx(agree_nt / pairs_nt)
    assert result.judge_human.agreement == pytest.approx(j_agree / j_pairs)
    assert result.judge_human_without_ties.agreement == pytest.approx(j_agree_nt / j_pairs_nt)


def _simulate(rng: np.random.Generator, n_items: int, raters: int) -> tuple[list, np.ndarray, dict]:
    """Items with their own preference distribution (base, tuned, tie, both-bad); humans and
    an extra rater used as "judge" all draw independently from it: exchangeable raters."""
    shares = rng.dirichlet([1.4, 1.8, 0.6, 0.2], size=n_items)
    item_ids, codes = [], []
    for item, p in enumerate(shares):
        votes = rng.choice(4, size=raters, p=p)
        item_ids += [item] * raters
        codes += votes.tolist()
    judge = {item: int(rng.choice(4, p=p)) for item, p in enumerate(shares)}
    return item_ids, np.array(codes), judge


def test_an_exchangeable_extra_rater_scores_like_a_human_but_not_against_the_majority() -> None:
    rng = np.random.default_rng(2024)
    differences, differences_nt, inflation = [], [], []
    for _ in range(30):
        item_ids, codes, judge = _simulate(rng, n_items=600, raters=3)
        result = judge_human_pairwise_agreement(item_ids, codes, judge)
        differences.append(result.difference.difference)
        differences_nt.append(result.difference_without_ties.difference)
        majority = majority_vote(item_ids, codes, on_split="none")
        common = {i: m for i, m in majority.items() if m is not None}
        old = judge_agreement(common, {i: judge[i] for i in common})
        inflation.append(old.agreement - result.human_human.agreement)
    # Scored as a human, the extra rater is a human on average: the mean difference over 30
    # runs is within about three standard errors (0.016 / sqrt(30) each) of zero...
    assert abs(np.mean(differences)) < 0.01
    assert abs(np.mean(differences_nt)) < 0.01
    # ...whereas against the majority of three, split items dropped, it looks better by about
    # five points (standard error of the mean about 0.004).
    assert np.mean(inflation) > 0.03
    # The difference's 95 % interval covers zero about 95 % of the time.
    covered = covered_nt = 0
    for run in range(40):
        item_ids, codes, judge = _simulate(rng, n_items=300, raters=3)
        result = judge_human_pairwise_agreement(
            item_ids, codes, judge, n_resamples=300, rng=np.random.default_rng(run)
        )
        covered += result.difference.ci_low < 0 < result.difference.ci_high
        covered_nt += (
            result.difference_without_ties.ci_low < 0 < result.difference_without_ties.ci_high
        )
    assert covered >= 34 and covered_nt >= 34  # expected 38 of 40


def test_pairwise_intervals_are_item_clustered_and_reproducible() -> None:
    item_ids, codes, judge = _simulate(np.random.default_rng(5), n_items=300, raters=4)
    first = judge_human_pairwise_agreement(
        item_ids, codes, judge, n_resamples=2000, rng=np.random.default_rng(11)
    )
    again = judge_human_pairwise_agreement(
        item_ids, codes, judge, n_resamples=2000, rng=np.random.default_rng(11)
    )
    assert first == again and first.n_resamples == 2000 and first.confidence == 0.95
    # The bootstrap over items matches the cluster-robust (sandwich) standard error of the
    # ratio of per-item totals, and is wider than treating the pairs as independent.
    counts = np.zeros((300, 3))
    for item, code in zip(item_ids, codes, strict=True):
        counts[item, min(code, TIE)] += 1
    agree = (counts * (counts - 1) / 2).sum(axis=1)
    pairs = np.full(300, 4 * 3 / 2)
    rate = agree.sum() / pairs.sum()
    sandwich = np.sqrt(300 / 299 * ((agree - rate * pairs) ** 2).sum()) / pairs.sum()
    naive = np.sqrt(rate * (1 - rate) / pairs.sum())
    hh = first.human_human
    assert hh.agreement == pytest.approx(rate)
    assert hh.ci_high - hh.ci_low == pytest.approx(2 * 1.96 * sandwich, rel=0.15)
    assert hh.ci_high - hh.ci_low > 1.2 * 2 * 1.96 * naive


def test_pairwise_agreement_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="item ids"):
        judge_human_pairwise_agreement(["a"], [1, 0], {"a": 1})
    with pytest.raises(ValueError, match="preference codes"):
        judge_human_pairwise_agreement(["a"], [1], {"a": 7})
    with pytest.raises(ValueError, match="numpy.random.Generator"):
        judge_human_pairwise_agreement(["a"], [1], {"a": 1}, n_resamples=10)
    empty = judge_human_pairwise_agreement(
        ["a"], [1], {"b": 1}, n_resamples=10, rng=np.random.default_rng(0)
    )
    assert empty.n_items == 0 and np.isnan(empty.judge_human.agreement)
    assert np.isnan(empty.difference.ci_low)
