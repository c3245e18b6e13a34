"""Win rate, Wilson / bootstrap intervals, sign test and length-adjusted win rate."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from scipy.stats import t as student_t
from statsmodels.stats.proportion import proportion_confint

from scoring.stats import winrate as winrate_module
from scoring.stats.votes import BASE, BOTH_BAD, TIE, TUNED, swap_systems
from scoring.stats.winrate import (
    count_outcomes,
    length_adjusted_win_rate,
    length_controlled_win_rate,
    sign_test,
    wilson_interval,
    win_rate,
)


def test_wilson_hand_computed() -> None:
    # 8 of 10 at 95%: z = 1.959964; centre = (0.8 + z^2/20) / (1 + z^2/10) = 0.716738,
    # half = z sqrt(0.8*0.2/10 + z^2/400) / (1 + z^2/10) = 0.226578.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.716738 - 0.226578, abs=1e-5)
    assert high == pytest.approx(0.716738 + 0.226578, abs=1e-5)
    assert (low, high) == pytest.approx(proportion_confint(8, 10, method="wilson"), abs=1e-12)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert all(np.isnan(wilson_interval(0, 0)))
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_sign_test_matches_scipy() -> None:
    assert sign_test(30, 18) == pytest.approx(binomtest(30, 48, 0.5).pvalue, abs=1e-15)
    assert sign_test(0, 0) == 1.0
    choices = [TUNED] * 30 + [BASE] * 18 + [TIE] * 7 + [BOTH_BAD] * 3
    assert win_rate(choices, n_resamples=0).sign_test_p_value == pytest.approx(
        binomtest(30, 48, 0.5).pvalue
    )


def test_counts_and_tie_conventions() -> None:
    choices = [TUNED] * 6 + [BASE] * 2 + [TIE] * 1 + [BOTH_BAD] * 1
    counts = count_outcomes(choices)
    assert (counts.tuned_wins, counts.base_wins, counts.ties, counts.both_bad) == (6, 2, 1, 1)
    assert (counts.total, counts.decisive) == (10, 8)
    half = win_rate(choices, n_resamples=0)
    assert half.win_rate == pytest.approx((6 + 0.5 * 2) / 10)  # both-bad is a tie
    assert (half.n, half.n_ties) == (10, 2)
    exclude = win_rate(choices, ties="exclude", n_resamples=0)
    assert exclude.win_rate == pytest.approx(6 / 8)
    assert exclude.n == 8
    assert (exclude.wilson_low, exclude.wilson_high) == pytest.approx(wilson_interval(6, 8))


def test_without_ties_wilson_is_the_plain_interval() -> None:
    choices = [TUNED] * 13 + [BASE] * 7
    result = win_rate(choices, n_resamples=0)
    assert (result.wilson_low, result.wilson_high) == pytest.approx(wilson_interval(13, 20))


def test_ties_shrink_the_effective_n_interval() -> None:
    # With ties the tie-as-half score has less variance than a Bernoulli: the corrected
    # interval is narrower than the plain Wilson interval on n votes, and wider than nothing.
    choices = [TUNED] * 40 + [BASE] * 20 + [TIE] * 40
    result = win_rate(choices, n_resamples=0)
    plain = wilson_interval(0.6 * 100, 100)
    assert result.wilson_high - result.wilson_low < plain[1] - plain[0]
    assert result.wilson_low < result.win_rate < result.wilson_high


def test_per_item_majority() -> None:
    items = ["a", "a", "a", "b", "b", "c", "c", "d"]
    choices = [TUNED, TUNED, BASE, BASE, TUNED, BASE, BASE, TIE]
    result = win_rate(choices, item_ids=items, unit="item", n_resamples=0)
    # a -> tuned, b -> split -> tie, c -> base, d -> tie
    assert (result.tuned_wins, result.base_wins, result.n_ties) == (1, 1, 2)
    assert result.win_rate == pytest.approx(0.5)
    assert result.n == 4
    with pytest.raises(ValueError, match="item_ids"):
        win_rate(choices, unit="item", n_resamples=0)


def test_cluster_bootstrap_resamples_items() -> None:
    rng = np.random.default_rng(0)
    items = np.repeat(np.arange(50), 3)
    choices = rng.choice(4, size=150, p=[0.3, 0.5, 0.15, 0.05])
    clustered = win_rate(choices, item_ids=list(items), rng=np.random.default_rng(1))
    independent = win_rate(choices, rng=np.random.default_rng(1))
    assert clustered.n_clusters == 50
    assert independent.n_clusters == 150
    assert clustered.win_rate == independent.win_rate
    assert clustered.bootstrap_low < clustered.win_rate < clustered.bootstrap_high


def test_bootstrap_matches_wilson_roughly_and_is_reproducible() -> None:
    choices = np.array([TUNED] * 120 + [BASE] * 60 + [TIE] * 20)
    a = win_rate(choices, rng=np.random.default_rng(7))
    b = win_rate(choices, rng=np.random.default_rng(7))
    assert a == b
    assert a.bootstrap_low == pytest.approx(a.wilson_low, abs=0.02)
    assert a.bootstrap_high == pytest.approx(a.wilson_high, abs=0.02)


choice_lists = st.lists(st.sampled_from([BASE, TUNED, TIE, BOTH_BAD]), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None)
@given(choices=choice_lists, ties=st.sampled_from(["half", "exclude"]), seed=st.integers(0, 999))
def test_swapping_systems_mirrors_the_win_rate(choices: list[int], ties: str, seed: int) -> None:
    original = win_rate(choices, ties=ties, rng=np.random.default_rng(seed), n_resamples=200)
    swapped = win_rate(
        swap_systems(choices), ties=ties, rng=np.random.default_rng(seed), n_resamples=200
    )
    if np.isnan(original.win_rate):
        assert np.isnan(swapped.win_rate)
        return
    assert swapped.win_rate == pytest.approx(1 - original.win_rate, abs=1e-12)
    assert swapped.wilson_low == pytest.approx(1 - original.wilson_high, abs=1e-9)
    assert swapped.wilson_high == pytest.approx(1 - original.wilson_low, abs=1e-9)
    assert swapped.bootstrap_low == pytest.approx(1 - original.bootstrap_high, abs=1e-9)
    assert swapped.bootstrap_high == pytest.approx(1 - original.bootstrap_low, abs=1e-9)
    assert swapped.sign_test_p_value == pytest.approx(original.sign_test_p_value)


def test_only_ties_excluded_gives_nan_not_error() -> None:
    result = win_rate([TIE, BOTH_BAD], ties="exclude", rng=np.random.default_rng(0))
    assert np.isnan(result.win_rate) and result.n == 0
    assert result.sign_test_p_value == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"choices": []}, "no votes"),
        ({"choices": [0, 5]}, "preference codes"),
        ({"choices": [0, 1], "ties": "quarter"}, "ties"),
        ({"choices": [0, 1], "unit": "rater"}, "unit"),
        ({"choices": [0, 1], "item_ids": ["a"]}, "item ids"),
    ],
)
def test_win_rate_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        win_rate(n_resamples=0, **kwargs)


def test_win_rate_requires_rng_for_bootstrap() -> None:
    with pytest.raises(ValueError, match="Generator"):
        win_rate([0, 1, 1])


# --------------------------------------------------------------------------------------------
# Length-adjusted win rate (single-pair logistic fit; formerly "length-controlled")


def _length_study(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Votes that prefer the longer response; the tuned system writes longer answers."""
    rng = np.random.default_rng(seed)
    length_base = rng.normal(300, 80, n)
    length_tuned = rng.normal(380, 80, n)
    x = np.tanh((length_tuned - length_base) / np.std(length_tuned - length_base))
    p_tuned = 1 / (1 + np.exp(-(0.0 + 1.5 * x)))  # no quality difference at equal length
    u = rng.random(n)
    choices = np.where(u < 0.15, TIE, np.where(rng.random(n) < p_tuned, TUNED, BASE))
    return choices, length_tuned, length_base


def _expit(v: float) -> float:
    return float(1 / (1 + np.exp(-v)))


def test_length_adjusted_matches_statsmodels_glm_with_cr1_and_t() -> None:
    # One vote per item: the sandwich by vote is HC0 times n / (n - 1) (CR1), t on n - 1 df.
    choices, lt, lb = _length_study(0)
    result = length_adjusted_win_rate(choices, lt, lb)
    y = np.array([0.0, 1.0, 0.5, 0.5])[choices]
    d = lt - lb
    x = np.tanh(d / d.std())
    glm = sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit(cov_type="HC0")
    assert result.intercept == pytest.approx(glm.params[0], abs=1e-5)
    assert result.slope == pytest.approx(glm.params[1], abs=1e-5)
    n = y.size
    se = glm.bse[0] * np.sqrt(n / (n - 1))
    q = student_t.ppf(0.975, n - 1)
    assert result.ci[0] == pytest.approx(_expit(glm.params[0] - q * se), abs=1e-5)
    assert result.ci[1] == pytest.approx(_expit(glm.params[0] + q * se), abs=1e-5)
    assert result.n_items == n and result.outcome == "codes"
    assert "CR1" in result.ci_method


def test_length_adjusted_ci_is_clustered_by_item() -> None:
    # Three identical votes per item: the item-clustered interval matches statsmodels' cluster
    # sandwich (times G / (G - 1)) and is about sqrt(3) wider than treating votes as independent.
    choices, lt, lb = _length_study(7, n=150)
    items = np.repeat(np.arange(150), 3)
    votes, l_t, l_b = choices[items], lt[items], lb[items]
    clustered = length_adjusted_win_rate(votes, l_t, l_b, item_ids=list(items))
    naive = length_adjusted_win_rate(votes, l_t, l_b)
    y = np.array([0.0, 1.0, 0.5, 0.5])[votes]
    d = l_t - l_b
    x = np.tanh(d / d.std())
    glm = sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": items, "use_correction": False}
    )
    se = glm.bse[0] * np.sqrt(150 / 149)
    q = student_t.ppf(0.975, 149)
    assert clustered.ci[0] == pytest.approx(_expit(glm.params[0] - q * se), abs=1e-5)
    assert clustered.n_items == 150 and naive.n_items == 450
    width = clustered.ci[1] - clustered.ci[0]
    assert width / (naive.ci[1] - naive.ci[0]) == pytest.approx(np.sqrt(3), rel=0.05)


def test_length_adjusted_accepts_judge_probabilities() -> None:
    # A judge's probabilities are fractional outcomes: the fit equals the GLM on them, and
    # probabilities 0 / 0.5 / 1 give the same fit as the codes base / tie / tuned.
    choices, lt, lb = _length_study(8, n=300)
    probs = np.clip(np.array([0.0, 1.0, 0.5, 0.5])[choices] * 0.8 + 0.1, 0, 1)
    result = length_adjusted_win_rate(None, lt, lb, probabilities=probs)
    x = np.tanh((lt - lb) / (lt - lb).std())
    glm = sm.GLM(probs, sm.add_constant(x), family=sm.families.Binomial()).fit()
    assert result.intercept == pytest.approx(glm.params[0], abs=1e-5)
    assert result.outcome == "probabilities"
    as_codes = length_adjusted_win_rate(choices, lt, lb)
    as_probs = length_adjusted_win_rate(
        None, lt, lb, probabilities=np.array([0.0, 1.0, 0.5, 0.5])[choices]
    )
    assert as_probs.adjusted_win_rate == pytest.approx(as_codes.adjusted_win_rate, abs=1e-12)
    with pytest.raises(ValueError, match="either choices"):
        length_adjusted_win_rate(choices, lt, lb, probabilities=probs)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        length_adjusted_win_rate(None, lt, lb, probabilities=probs + 1)
    with pytest.raises(ValueError, match="exclude"):
        length_adjusted_win_rate(None, lt, lb, probabilities=probs, ties="exclude")


def test_length_adjustment_removes_a_pure_length_preference() -> None:
    choices, lt, lb = _length_study(1, n=1500)
    result = length_adjusted_win_rate(
        choices, lt, lb, n_resamples=1000, rng=np.random.default_rng(0)
    )
    assert result.win_rate > 0.6  # raw rate rewards the longer answers
    assert result.adjusted_win_rate == pytest.approx(0.5, abs=0.05)
    assert result.bootstrap_ci[0] < result.adjusted_win_rate < result.bootstrap_ci[1]
    assert result.ci[0] < 0.5 < result.ci[1]
    assert result.slope > 0


def test_length_adjusted_mirrors_on_swap() -> None:
    choices, lt, lb = _length_study(2, n=200)
    a = length_adjusted_win_rate(choices, lt, lb, rng=np.random.default_rng(3), n_resamples=200)
    b = length_adjusted_win_rate(
        swap_systems(choices), lb, lt, rng=np.random.default_rng(3), n_resamples=200
    )
    assert b.adjusted_win_rate == pytest.approx(1 - a.adjusted_win_rate, abs=1e-9)
    assert b.ci[0] == pytest.approx(1 - a.ci[1], abs=1e-9)
    assert b.bootstrap_ci[0] == pytest.approx(1 - a.bootstrap_ci[1], abs=1e-9)
    assert b.slope == pytest.approx(a.slope, abs=1e-9)


def test_length_adjusted_degenerate_inputs() -> None:
    # Equal lengths: no length term, the adjusted rate is the raw rate.
    same = length_adjusted_win_rate([1, 1, 0, 2], [5, 5, 5, 5], [5, 5, 5, 5])
    assert same.adjusted_win_rate == pytest.approx(same.win_rate, abs=1e-6)
    # Complete separation stays finite.
    sep = length_adjusted_win_rate([1] * 10, np.arange(10.0), np.zeros(10))
    assert 0.99 < sep.adjusted_win_rate <= 1.0
    # Excluding ties and clustering by item.
    choices, lt, lb = _length_study(4, n=120)
    items = list(np.repeat(np.arange(40), 3))
    res = length_adjusted_win_rate(
        choices,
        lt,
        lb,
        ties="exclude",
        item_ids=items,
        rng=np.random.default_rng(0),
        n_resamples=100,
    )
    assert res.n == int((choices != TIE).sum())
    with pytest.raises(ValueError, match="same length"):
        length_adjusted_win_rate([1, 0], [1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="ties"):
        length_adjusted_win_rate([2, 3], [1.0, 2.0], [1.0, 2.0], ties="exclude")
    with pytest.raises(ValueError, match="finite"):
        length_adjusted_win_rate([1, 0], [np.nan, 1.0], [1.0, 2.0])


def test_former_name_keeps_its_fields_for_the_report() -> None:
    # scoring/reports.py still calls length_controlled_win_rate and reads these fields.
    choices, lt, lb = _length_study(5, n=90)
    items = list(np.repeat(np.arange(30), 3))
    old = length_controlled_win_rate(
        choices, lt, lb, item_ids=items, n_resamples=100, rng=np.random.default_rng(1)
    )
    new = length_adjusted_win_rate(
        choices, lt, lb, item_ids=items, n_resamples=100, rng=np.random.default_rng(1)
    )
    assert old.lc_win_rate == new.adjusted_win_rate
    assert (old.delta_low, old.delta_high) == new.ci
    assert (old.bootstrap_low, old.bootstrap_high) == new.bootstrap_ci
    assert (old.slope, old.win_rate, old.transform) == (new.slope, new.win_rate, new.transform)


def _per_item_length_study(
    seed: int, n_items: int, votes_per_item: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Votes whose lengths are per item (every vote of an item has the same length difference)."""
    rng = np.random.default_rng(seed)
    lb = np.repeat(rng.normal(300, 80, n_items), votes_per_item)
    lt = np.repeat(rng.normal(380, 80, n_items), votes_per_item)
    x = np.tanh((lt - lb) / np.std(lt - lb))
    p_tuned = 1 / (1 + np.exp(-(0.2 + 1.2 * x)))
    n = n_items * votes_per_item
    u = rng.random(n)
    choices = np.where(u < 0.1, TIE, np.where(u < 0.15, BOTH_BAD, TUNED))
    choices = np.where((choices == TUNED) & (rng.random(n) >= p_tuned), BASE, choices)
    items = np.repeat(rng.permutation(n_items), votes_per_item)  # item ids not in vote order
    order = rng.permutation(n)  # votes of an item are not contiguous
    return choices[order], lt[order], lb[order], list(items[order])


@pytest.mark.parametrize("ties", ["half", "exclude"])
@pytest.mark.parametrize("transform", ["tanh", "std"])
def test_length_adjusted_per_item_rows_match_the_per_vote_fit(
    ties: str, transform: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lengths per item: the fit, delta method and cluster bootstrap run on one row per item.
    # Forcing the per-vote path must give the same numbers (same bootstrap draws).
    choices, lt, lb, items = _per_item_length_study(11, n_items=150, votes_per_item=4)
    kwargs = {"item_ids": items, "ties": ties, "transform": transform, "n_resamples": 300}
    grouped = length_adjusted_win_rate(choices, lt, lb, rng=np.random.default_rng(5), **kwargs)
    calls: list[object] = []
    real = winrate_module._per_item_rows

    def no_grouping(*args: object) -> None:
        calls.append(real(*args))
        return None

    monkeypatch.setattr(winrate_module, "_per_item_rows", no_grouping)
    per_vote = length_adjusted_win_rate(choices, lt, lb, rng=np.random.default_rng(5), **kwargs)
    assert calls and calls[0] is not None  # the data qualify: the first call ran grouped
    for field in (
        "win_rate",
        "adjusted_win_rate",
        "intercept",
        "slope",
        "ci",
        "bootstrap_ci",
        "length_scale",
    ):
        assert getattr(grouped, field) == pytest.approx(getattr(per_vote, field), abs=1e-9), field
    assert (grouped.n, grouped.n_items, grouped.n_resamples) == (
        per_vote.n,
        per_vote.n_items,
        per_vote.n_resamples,
    )


def test_length_adjusted_varying_length_within_an_item_keeps_the_per_vote_fit() -> None:
    choices, lt, lb, items = _per_item_length_study(12, n_items=60, votes_per_item=3)
    lt = lt.copy()
    first = items.index(items[0])
    lt[first] += 50.0  # one vote of one item now has its own length
    y = np.array([0.0, 1.0, 0.5, 0.5])[choices]
    x = np.tanh((lt - lb) / np.std(lt - lb))
    clusters = winrate_module.index_items(items)[1]
    assert winrate_module._per_item_rows(x, y, clusters, int(clusters.max()) + 1) is None
    result = length_adjusted_win_rate(
        choices, lt, lb, item_ids=items, rng=np.random.default_rng(0), n_resamples=100
    )
    glm = sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit()
    assert result.intercept == pytest.approx(glm.params[0], abs=1e-5)
    assert result.slope == pytest.approx(glm.params[1], abs=1e-5)
    assert result.n_items == 60
    assert result.bootstrap_ci[0] < result.adjusted_win_rate < result.bootstrap_ci[1]
