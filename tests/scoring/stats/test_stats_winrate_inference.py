"""Item-clustered win-rate inference and the release-gate criterion
(scoring.stats.winrate_inference, scoring.stats.clustered)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import binom, norm
from scipy.stats import t as student_t

from scoring.stats.clustered import score_interval, sign_flip_test
from scoring.stats.votes import BASE, TIE, TUNED
from scoring.stats.winrate import wilson_interval
from scoring.stats.winrate_inference import (
    counts_from_votes,
    win_rate_gate,
    win_rate_inference,
)


def _counts(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=np.int64)


def _brute_force_sign_flip(steps: list[int]) -> tuple[float, float]:
    observed = abs(sum(steps))
    if observed == 0:
        return 1.0, 1.0  # no evidence either way, by convention
    totals = [
        abs(sum(s * v for s, v in zip(signs, steps, strict=True)))
        for signs in itertools.product((-1, 1), repeat=len(steps))
    ]
    n = len(totals)
    exact = sum(t >= observed for t in totals) / n
    mid = sum(t > observed for t in totals) / n + sum(t == observed for t in totals) / (2 * n)
    return exact, mid


def test_one_vote_gives_a_wide_interval_and_no_preference() -> None:
    result = win_rate_inference(_counts([[0, 1, 0, 0]]))
    assert result.win_rate == 1.0
    low, high = result.ci
    assert high == 1.0 and low < 0.5  # not [1, 1]
    assert result.p_value_exact == 1.0 and result.p_value == 0.5  # exact and mid-p of 1 of 1
    assert win_rate_gate(_counts([[0, 1, 0, 0]])).status == "undecided"
    assert any("1 item" in w for w in result.warnings)


def test_four_wins_and_sixteen_ties_are_not_significant() -> None:
    counts = _counts([[0, 1, 0, 0]] * 4 + [[0, 0, 1, 0]] * 16)
    result = win_rate_inference(counts)
    assert result.win_rate == pytest.approx(0.6)
    assert result.p_value_exact == pytest.approx(0.125)  # the exact sign test, 4 of 4
    assert result.p_value == pytest.approx(0.0625)  # its mid-p
    assert result.ci[0] < 0.5 < result.ci[1]
    assert result.ci_no_ties[0] < 0.5 < result.ci_no_ties[1]
    assert win_rate_gate(counts).status == "undecided"


def test_interval_is_extended_to_one_half_when_the_exact_test_does_not_reject() -> None:
    # Four decisive items among many ties: the normal interval excludes 1/2, the exact test
    # (mid-p 1/16) does not, so the interval is extended and says why.
    counts = _counts([[0, 1, 0, 0]] * 4 + [[0, 0, 1, 0]] * 200)
    result = win_rate_inference(counts)
    assert result.ci[0] == 0.5
    assert "extended to 1/2" in result.ci_method
    assert any("normal approximation is unreliable" in w for w in result.warnings)
    assert win_rate_gate(counts).status == "undecided"


@pytest.mark.parametrize("code", [TUNED, BASE])
def test_all_votes_one_way_give_a_non_degenerate_interval(code: int) -> None:
    counts = np.zeros((30, 4), dtype=np.int64)
    counts[:, code] = 3
    result = win_rate_inference(counts)
    low, high = result.ci
    assert 0.0 < high - low < 0.2
    assert (high == 1.0) if code == TUNED else (low == 0.0)
    assert result.design_effect == pytest.approx(3.0)  # the largest plausible: one unit per item
    assert result.effective_n == pytest.approx(30.0)
    assert any("design effect cannot be estimated" in w for w in result.warnings)
    assert result.p_value_exact == pytest.approx(2 * 0.5**30)
    assert win_rate_gate(counts).status == ("pass" if code == TUNED else "fail")


def test_sign_flip_test_matches_enumeration_with_unequal_votes_per_item() -> None:
    rng = np.random.default_rng(4)
    for _ in range(20):
        steps = rng.integers(-4, 5, size=rng.integers(1, 12)).tolist()
        exact, mid = _brute_force_sign_flip(steps)
        result = sign_flip_test(steps)
        assert result.p_value == pytest.approx(exact, abs=1e-12)
        assert result.mid_p_value == pytest.approx(mid, abs=1e-12)
    with pytest.raises(ValueError, match="integers"):
        sign_flip_test([0.5, 1.0])


def test_one_vote_per_item_without_ties_is_wilson_with_student_t() -> None:
    # m = 1, no ties: the design effect is exactly 1 and the interval is Wilson's with the
    # normal quantile replaced by t on n - 1 df.
    counts = _counts([[0, 1, 0, 0]] * 37 + [[1, 0, 0, 0]] * 23)
    result = win_rate_inference(counts)
    assert result.design_effect == pytest.approx(1.0)
    level = 2 * norm.cdf(student_t.ppf(0.975, 59)) - 1
    assert result.ci == pytest.approx(wilson_interval(37, 60, confidence=level), abs=1e-9)


def test_unequal_votes_per_item_bounds_solve_the_score_equation() -> None:
    counts = _counts([[0, 3, 1, 0], [1, 0, 0, 0], [0, 2, 0, 0], [2, 2, 1, 0], [0, 1, 0, 1]] * 6)
    result = win_rate_inference(counts)
    votes = counts.sum(axis=1)
    scores = counts[:, TUNED] + 0.5 * (counts[:, TIE] + counts[:, 3])
    p = scores.sum() / votes.sum()
    assert result.win_rate == pytest.approx(p)
    tie_share = (counts[:, TIE] + counts[:, 3]).sum() / votes.sum()
    k = student_t.ppf(0.975, 29) ** 2 * result.design_effect / votes.sum()
    for bound in result.ci:
        tau = min(tie_share, 2 * min(bound, 1 - bound))
        assert (p - bound) ** 2 == pytest.approx(k * (bound * (1 - bound) - tau / 4), abs=1e-9)
    # Vote-weighted, invariant to item order.
    shuffled = win_rate_inference(counts[np.random.default_rng(0).permutation(len(counts))])
    assert shuffled.ci == pytest.approx(result.ci, abs=1e-12)


def test_swapping_systems_mirrors_the_interval() -> None:
    counts = _counts([[1, 2, 0, 0], [0, 3, 0, 0], [2, 1, 0, 0], [0, 1, 2, 0], [1, 1, 1, 0]] * 5)
    swapped = counts[:, [1, 0, 2, 3]]
    a, b = win_rate_inference(counts), win_rate_inference(swapped)
    assert b.win_rate == pytest.approx(1 - a.win_rate)
    assert b.ci == pytest.approx((1 - a.ci[1], 1 - a.ci[0]), abs=1e-9)
    assert b.p_value == pytest.approx(a.p_value)


def test_clustered_interval_is_wider_than_vote_counting_when_raters_agree() -> None:
    rng = np.random.default_rng(2)
    leaning = rng.random(200) < 0.55
    counts = np.zeros((200, 4), dtype=np.int64)
    counts[leaning, TUNED] = 3
    counts[~leaning, BASE] = 3
    result = win_rate_inference(counts)
    votes = 600
    naive = wilson_interval(result.tuned_wins, votes)
    assert result.ci[1] - result.ci[0] > 1.6 * (naive[1] - naive[0])  # sqrt(3) = 1.73
    assert result.design_effect == pytest.approx(3.0, rel=0.02)


def test_score_interval_never_collapses() -> None:
    low, high = score_interval(
        np.array([0.0, 1.0, 0.5, 0.5]), np.array([0, 0, 1.0, 0]), 1.0, 10, 9, 0.95
    )
    assert np.all(high - low > 0.05)


def _panel_study(
    n_items: int, raters: list[int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    items = np.repeat(np.arange(n_items), len(raters))
    rater_index = np.tile(raters, n_items)
    codes = rng.choice([BASE, TUNED, TIE], size=items.size, p=[0.35, 0.45, 0.2])
    return items, rater_index, codes


def test_panel_interval_and_what_each_interval_generalises_to() -> None:
    rng = np.random.default_rng(3)
    items, raters, codes = _panel_study(80, [0, 1, 2, 3], rng)
    # Rater 3 leans strongly to tuned: the rater variance widens the panel interval.
    codes = np.where((raters == 3) & (rng.random(codes.size) < 0.8), TUNED, codes)
    result = win_rate_inference(item_index=items, rater_index=raters, codes=codes)
    assert result.n_raters == 4 and result.top_rater_share == pytest.approx(0.25)
    assert result.panel_ci[1] - result.panel_ci[0] > result.ci[1] - result.ci[0]
    assert "this panel of 4 raters" in result.generalises_to_items
    assert "new panel of raters drawn like these 4 raters" in result.generalises_to_panel
    assert result.warnings == ()
    # Same estimate and item interval as the per-item counts alone.
    from_counts = win_rate_inference(counts_from_votes(items, codes))
    assert from_counts.ci == result.ci and from_counts.panel_ci is None
    assert "needs each vote's rater" in from_counts.panel_method


def test_panel_warns_about_a_dominant_rater_and_a_small_panel() -> None:
    rng = np.random.default_rng(5)
    items, raters, codes = _panel_study(60, [0, 1], rng)
    result = win_rate_inference(item_index=items, rater_index=raters, codes=codes)
    assert any("Only 2 rater(s)" in w for w in result.warnings)
    # One rater on every item, four others sharing the second vote: rater 0 casts 50%+.
    items = np.repeat(np.arange(60), 2)
    raters = np.column_stack([np.zeros(60, int), 1 + np.arange(60) % 4]).ravel()
    codes = rng.choice([BASE, TUNED], size=120)
    extra_items = np.arange(60, 70)
    items = np.concatenate([items, extra_items])
    raters = np.concatenate([raters, np.zeros(10, int)])
    codes = np.concatenate([codes, np.ones(10, int)])
    result = win_rate_inference(item_index=items, rater_index=raters, codes=codes)
    assert result.top_rater_share == pytest.approx(70 / 130)
    assert any("One rater cast 54%" in w for w in result.warnings)


def test_panel_input_errors() -> None:
    with pytest.raises(ValueError, match="more than one vote"):
        win_rate_inference(item_index=[0, 0], rater_index=[1, 1], codes=[1, 0])
    with pytest.raises(ValueError, match="do not match"):
        win_rate_inference(
            _counts([[0, 2, 0, 0]]), item_index=[0, 0], rater_index=[0, 1], codes=[1, 0]
        )
    with pytest.raises(ValueError, match="give counts"):
        win_rate_inference()
    with pytest.raises(ValueError, match="panel"):
        win_rate_gate(_counts([[0, 1, 0, 0]]), method="panel")


def test_no_votes() -> None:
    result = win_rate_inference(np.zeros((3, 4), dtype=np.int64))
    assert result.n_votes == 0 and math.isnan(result.win_rate) and result.p_value == 1.0
    assert win_rate_gate(np.zeros((0, 4), dtype=np.int64)).status == "undecided"


def test_gate_is_deterministic_and_ignores_vote_order() -> None:
    rng = np.random.default_rng(9)
    items, raters, codes = _panel_study(150, [0, 1, 2, 3, 4], rng)
    verdicts = set()
    for seed in range(50):
        order = np.random.default_rng(seed).permutation(codes.size)
        gate = win_rate_gate(item_index=items[order], codes=codes[order])
        panel = win_rate_gate(
            item_index=items[order],
            rater_index=raters[order],
            codes=codes[order],
            method="panel",
        )
        verdicts.add((gate.status, gate.bound, gate.upper, panel.status, panel.bound))
    assert len(verdicts) == 1
    gate = win_rate_gate(item_index=items, codes=codes)
    inference = win_rate_inference(item_index=items, codes=codes)
    assert (gate.bound, gate.upper) == inference.ci
    expected = "pass" if gate.bound > 0.5 else "fail" if gate.upper < 0.5 else "undecided"
    assert gate.status == expected
    assert "item-level CI" in gate.evidence


def test_gate_fails_when_base_is_credibly_better_and_respects_the_threshold() -> None:
    counts = _counts([[2, 1, 0, 0]] * 150 + [[3, 0, 0, 0]] * 50)
    assert win_rate_gate(counts).status == "fail"
    better = _counts([[1, 2, 0, 0]] * 150 + [[0, 3, 0, 0]] * 50)
    assert win_rate_gate(better).status == "pass"
    assert win_rate_gate(better, threshold=0.75).status == "undecided"
    with pytest.raises(ValueError, match="threshold"):
        win_rate_gate(better, threshold=1.5)


def test_a_panel_interval_narrower_than_the_item_interval_is_flagged() -> None:
    # Three raters whose totals happen to agree closely: the rater variance estimate is small.
    rng = np.random.default_rng(0)
    items = np.repeat(np.arange(50), 3)
    raters = np.tile([0, 1, 2], 50)
    codes = rng.integers(0, 3, 150)
    result = win_rate_inference(item_index=items, rater_index=raters, codes=codes)
    assert result.panel_ci[1] - result.panel_ci[0] < result.ci[1] - result.ci[0]
    assert any("narrower than the item interval" in w for w in result.warnings)
    # A panel with a clearly deviant rater is wider and carries no such warning.
    biased = np.where(raters == 2, TUNED, codes)
    wide = win_rate_inference(item_index=items, rater_index=raters, codes=biased)
    assert wide.panel_ci[1] - wide.panel_ci[0] > wide.ci[1] - wide.ci[0]
    assert not any("narrower" in w for w in wide.warnings)


def test_the_gate_needs_the_exact_test_too() -> None:
    # One vote per item: 11 tuned wins, 3 base wins, 6 ties. The mid-p (0.035) lets the
    # interval clear 1/2, but the exact sign test's p is 0.057: the gate must not pass on it.
    counts = [[0, 1, 0, 0]] * 11 + [[1, 0, 0, 0]] * 3 + [[0, 0, 1, 0]] * 6
    result = win_rate_inference(counts)
    assert result.p_value == pytest.approx(0.03515625) and "mid-p" in result.p_method
    assert result.p_value_exact == pytest.approx(0.057373046875)
    assert result.ci[0] > 0.5
    gate = win_rate_gate(counts)
    assert gate.status == "undecided" and "exact sign-flip test" in gate.evidence
    # So with 5 tuned wins and 15 ties (mid-p 0.031, exact 0.0625).
    gate = win_rate_gate([[0, 1, 0, 0]] * 5 + [[0, 0, 1, 0]] * 15)
    assert gate.status == "undecided" and "exact sign-flip test" in gate.evidence
    # With 8 wins the exact p (0.0078) rejects: pass.
    assert win_rate_gate([[0, 1, 0, 0]] * 8 + [[0, 0, 1, 0]] * 12).status == "pass"
    # 4 wins and 16 ties: not significant at all.
    assert win_rate_gate([[0, 1, 0, 0]] * 4 + [[0, 0, 1, 0]] * 16).status == "undecided"


def test_the_p_method_gives_the_sizes_of_both_tests_for_these_items() -> None:
    # 5 tuned wins and 15 ties: with 5 decisive votes the mid-p test (reject 5-0, mid-p 1/32)
    # has size 2/32 = 6.25%, the exact test (exact p 1/16 never below 5%) size 0.
    counts = [[0, 1, 0, 0]] * 5 + [[0, 0, 1, 0]] * 15
    result = win_rate_inference(counts)
    assert result.p_value == pytest.approx(0.03125)
    assert result.p_value_exact == pytest.approx(0.0625)
    assert "size at 5% for these items: mid-p 6.2%, exact p 0.0%" in result.p_method
    assert win_rate_gate(counts).status == "undecided"
    # At 99% confidence the sizes refer to a 1% level.
    assert "size at 1%" in win_rate_inference(counts, confidence=0.99).p_method


@pytest.mark.parametrize(
    ("decisive", "mid_size", "exact_size"),
    # Sign test sizes by arithmetic: rejection regions of Binomial(n, 1/2).
    [(16, 0.0768, 0.0213), (30, 0.0428, 0.0428), (50, 0.0649, 0.0328), (100, 0.0569, 0.0352)],
)
def test_conditional_sizes_of_the_sign_test(
    decisive: int, mid_size: float, exact_size: float
) -> None:
    test = sign_flip_test([1] * decisive)
    assert test.mid_p_size == pytest.approx(mid_size, abs=5e-5)
    assert test.exact_size == pytest.approx(exact_size, abs=5e-5)
    # The same sizes by brute force over the binomial distribution.
    wins = np.arange(decisive + 1)
    pmf = binom.pmf(wins, decisive, 0.5)
    tests = [sign_flip_test([1] * w + [-1] * (decisive - w)) for w in wins]
    assert test.mid_p_size == pytest.approx(
        sum(q for q, t in zip(pmf, tests, strict=True) if t.mid_p_value < 0.05), abs=1e-12
    )
    assert test.exact_size == pytest.approx(
        sum(q for q, t in zip(pmf, tests, strict=True) if t.p_value < 0.05), abs=1e-12
    )


def test_conditional_size_with_unequal_item_magnitudes_matches_enumeration() -> None:
    steps = [3, -1, 2, 1, -3, 1, 2, -1, 1, 1, 3, -2]
    totals = np.array(
        [
            abs(sum(s * abs(v) for s, v in zip(signs, steps, strict=True)))
            for signs in itertools.product((-1, 1), repeat=len(steps))
        ]
    )
    gaps = 0
    for level in (0.02, 0.05, 0.1, 0.2):
        test = sign_flip_test(steps, level=level)
        sizes = {"mid": 0.0, "exact": 0.0}
        for observed in np.unique(totals[totals > 0]):
            share = np.mean(totals == observed)
            exact_p = np.mean(totals >= observed)
            sizes["exact"] += share * (exact_p < level)
            sizes["mid"] += share * (exact_p - share / 2 < level)
        assert test.mid_p_size == pytest.approx(sizes["mid"], abs=1e-12)
        assert test.exact_size == pytest.approx(sizes["exact"], abs=1e-12)
        assert test.exact_size <= level and test.exact_size <= test.mid_p_size
        gaps += test.mid_p_size > test.exact_size
    assert gaps > 0
    with pytest.raises(ValueError, match="level"):
        sign_flip_test(steps, level=1.0)


def test_large_studies_agree_with_direct_convolution() -> None:
    # 1,000 items with up to 5 votes: computed from the characteristic function by one FFT;
    # the same distribution by direct convolution of scaled binomials gives the same answers.
    rng = np.random.default_rng(8)
    steps = rng.integers(-5, 6, 1000)
    steps[:40] = 5  # a modest lean to tuned, so the p-value is neither 1 nor tiny
    magnitudes, counts = np.unique(np.abs(steps[steps != 0]), return_counts=True)
    pmf = np.ones(1)
    for v, c in zip(magnitudes, counts, strict=True):
        group = np.zeros(2 * v * c + 1)
        group[:: 2 * v] = binom.pmf(np.arange(c + 1), c, 0.5)
        pmf = np.convolve(pmf, group)
    total = (pmf.size - 1) // 2
    observed = abs(int(steps.sum()))
    exact = 2 * pmf[total + observed :].sum()
    mid = exact - pmf[total + observed]
    result = sign_flip_test(steps)
    assert 1e-4 < result.p_value < 0.5
    assert result.p_value == pytest.approx(exact, abs=1e-12)
    assert result.mid_p_value == pytest.approx(mid, abs=1e-12)
    upper = np.cumsum(pmf[total:][::-1])[::-1]
    mid_all = 2 * upper - pmf[total:]
    mid_all[0] = 1.0
    assert result.mid_p_size == pytest.approx(2 * pmf[total:][mid_all < 0.05].sum(), abs=1e-12)
