"""Shared item resamples (`joint_bootstrap`), the plans built on them, and the array helpers
the report uses on a million votes: each checked against the plain computation it replaces."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.stats import agreement, raters, reconcile
from scoring.stats._resampling import (
    BootstrapTarget,
    bootstrap_statistic,
    joint_bootstrap,
    resample_weights,
)
from scoring.stats.arrays import first_seen_integers, has_duplicates, sorted_unique
from scoring.stats.votes import Vote, index_items


def ratio(sums: np.ndarray) -> np.ndarray:
    return sums[:, 0] / sums[:, 1]


def manual_replicates(features: np.ndarray, finalize, n_resamples: int, seed: int) -> np.ndarray:
    """The replicates as `bootstrap_statistic` draws them, written out."""
    rng = np.random.default_rng(seed)
    parts = [
        finalize(weights @ features)
        for weights in resample_weights(features.shape[0], n_resamples, rng)
    ]
    return np.concatenate(parts)


def test_a_single_target_draws_as_bootstrap_statistic() -> None:
    features = np.random.default_rng(0).random((50, 2)) + 0.1
    alone = bootstrap_statistic(features, ratio, 300, np.random.default_rng(4))
    target = BootstrapTarget(np.arange(50), features, ratio)
    [joint] = joint_bootstrap([target], 300, np.random.default_rng(4))
    assert np.array_equal(alone, joint)
    assert np.array_equal(alone, manual_replicates(features, ratio, 300, 4))


def test_targets_over_the_same_units_share_each_resample_whatever_their_row_order() -> None:
    rng = np.random.default_rng(1)
    units = rng.permutation(np.arange(1_000, 1_040))
    first = rng.random((40, 2)) + 0.1
    second = rng.random((40, 3)) + 0.1
    shuffle = rng.permutation(40)  # the second target lists the same units in another order
    targets = [
        BootstrapTarget(units, first, ratio),
        BootstrapTarget(units[shuffle], second[shuffle], lambda s: s[:, 2] / s[:, 0]),
    ]
    a, b = joint_bootstrap(targets, 200, np.random.default_rng(9))
    # One set of draws over the first target's row order serves both.
    weights = np.concatenate(list(resample_weights(40, 200, np.random.default_rng(9))))
    # Equal to rounding, not bit for bit: the joint product runs over both targets' columns at
    # once, and OpenBLAS's kernel (AVX-512 here) sums in another order for another width. A
    # different draw would differ by ~1e-2, so 1e-13 still proves the draws are shared.
    assert np.allclose(a, ratio(weights @ first), rtol=1e-13, atol=0)
    assert np.allclose(b, (weights @ second)[:, 2] / (weights @ second)[:, 0], rtol=1e-13, atol=0)


def test_a_subset_of_the_units_is_resampled_on_its_own() -> None:
    rng = np.random.default_rng(2)
    every = rng.random((30, 2)) + 0.1
    some = rng.random((12, 2)) + 0.1
    targets = [
        BootstrapTarget(np.arange(30), every, ratio),
        BootstrapTarget(np.arange(0, 24, 2), some, ratio),
    ]
    a, b = joint_bootstrap(targets, 150, np.random.default_rng(5))
    # The sets are drawn one after the other from the same generator: 12 draws from 12 units
    # for the subset, exactly as it would be bootstrapped alone after the first set.
    stream = np.random.default_rng(5)
    assert np.array_equal(a, bootstrap_statistic(every, ratio, 150, stream))
    assert np.array_equal(b, bootstrap_statistic(some, ratio, 150, stream))


def test_identical_columns_are_multiplied_once_and_give_identical_replicates() -> None:
    features = np.random.default_rng(3).random((25, 4)) + 0.1
    first = BootstrapTarget(np.arange(25), features, ratio)
    twin = BootstrapTarget(np.arange(25), features.copy(), ratio)
    a, b = joint_bootstrap([first, twin], 100, np.random.default_rng(6))
    assert np.array_equal(a, b)


def test_no_resamples_gives_empty_replicates() -> None:
    target = BootstrapTarget(np.arange(5), np.ones((5, 2)), ratio)
    assert [r.size for r in joint_bootstrap([target, target], 0, np.random.default_rng(0))] == [
        0,
        0,
    ]


def test_units_must_match_the_feature_rows() -> None:
    with pytest.raises(ValueError, match="one unit id per feature row"):
        joint_bootstrap([BootstrapTarget(np.arange(3), np.ones((4, 2)), ratio)], 5, None)


def test_many_units_count_each_resample_with_its_own_bincount() -> None:
    n_units = 5_000  # above the per-row threshold
    [weights] = list(resample_weights(n_units, 3, np.random.default_rng(8)))
    draws = np.random.default_rng(8).integers(0, n_units, size=(3, n_units), dtype=np.int64)
    expected = np.stack([np.bincount(row, minlength=n_units) for row in draws])
    assert np.array_equal(weights, expected)
    assert (weights.sum(axis=1) == n_units).all()


# --------------------------------------------------------------------------------------------
# Plans: the coefficient functions are their plans bootstrapped alone


def ratings(seed: int, raters_: int = 4, items: int = 60, missing: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 3, size=(raters_, items)).astype(float)
    data[rng.random(data.shape) < missing] = np.nan
    return data


@pytest.mark.parametrize(
    ("plan", "function"),
    [
        (
            lambda d: agreement.krippendorff_alpha_plan(d, categories=[0, 1, 2]),
            lambda d, r: agreement.krippendorff_alpha(d, categories=[0, 1, 2], rng=r),
        ),
        (
            lambda d: agreement.fleiss_kappa_plan(d, categories=[0, 1, 2]),
            lambda d, r: agreement.fleiss_kappa(d, categories=[0, 1, 2], rng=r),
        ),
        (
            lambda d: agreement.percent_agreement_plan(d),
            lambda d, r: agreement.percent_agreement(d, rng=r),
        ),
        (
            lambda d: agreement.gwet_ac_plan(d, categories=[0, 1, 2]),
            lambda d, r: agreement.gwet_ac1(d, categories=[0, 1, 2], rng=r),
        ),
    ],
    ids=["alpha", "fleiss", "percent", "gwet"],
)
def test_a_plan_bootstrapped_alone_is_the_coefficient(plan, function) -> None:
    data = ratings(11)
    made = plan(data)
    [replicates] = joint_bootstrap([made.target], 1000, np.random.default_rng(7))
    assert made.result(replicates) == function(data, np.random.default_rng(7))


def test_coefficients_of_the_same_items_share_draws_and_keep_their_estimates() -> None:
    data = ratings(12, missing=0.0)  # every item pairable: one set of units for all four
    items = np.arange(500, 500 + data.shape[1])
    plans = [
        agreement.krippendorff_alpha_plan(data, categories=[0, 1, 2], item_ids=items),
        agreement.fleiss_kappa_plan(data, categories=[0, 1, 2], item_ids=items),
        agreement.percent_agreement_plan(data, item_ids=items),
        agreement.gwet_ac_plan(data, categories=[0, 1, 2], item_ids=items),
    ]
    replicates = joint_bootstrap([p.target for p in plans], 400, np.random.default_rng(3))
    weights = np.concatenate(list(resample_weights(data.shape[1], 400, np.random.default_rng(3))))
    for plan, reps in zip(plans, replicates, strict=True):
        assert np.allclose(reps, plan.target.finalize(weights @ plan.target.features), rtol=1e-12)
        alone = {
            "krippendorff_alpha_nominal": agreement.krippendorff_alpha(
                data, categories=[0, 1, 2], n_resamples=0
            ),
            "fleiss_kappa": agreement.fleiss_kappa(data, categories=[0, 1, 2], n_resamples=0),
            "percent_agreement": agreement.percent_agreement(data, n_resamples=0),
            "gwet_ac1": agreement.gwet_ac1(data, categories=[0, 1, 2], n_resamples=0),
        }[plan.statistic]
        assert plan.estimate == alone.estimate
        assert plan.result(reps).n_items == alone.n_items


def test_percent_agreement_leaves_single_ratings_out_of_its_units() -> None:
    data = ratings(13, missing=0.6)
    items = np.arange(data.shape[1]) * 10
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    rated = (~np.isnan(data)).sum(axis=0) >= 1
    assert not np.array_equal(pairable, rated)
    percent = agreement.percent_agreement_plan(data, item_ids=items)
    fleiss = agreement.fleiss_kappa_plan(data, categories=[0, 1, 2], item_ids=items)
    assert np.array_equal(percent.target.units, items[pairable])
    assert np.array_equal(fleiss.target.units, items[rated])


def test_undefined_replicates_are_counted_in_the_result() -> None:
    plan = agreement.krippendorff_alpha_plan(ratings(14))
    replicates = np.array([0.1, np.nan, 0.3, np.nan])
    result = plan.result(replicates)
    assert result.n_resamples == 4 and result.n_undefined_resamples == 2
    assert result.ci_low >= 0.1 and result.ci_high <= 0.3


def test_item_ids_must_be_distinct_integers_one_per_column() -> None:
    data = ratings(15)
    with pytest.raises(ValueError, match="one integer id per column"):
        agreement.fleiss_kappa_plan(data, item_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="distinct"):
        agreement.fleiss_kappa_plan(data, item_ids=np.zeros(data.shape[1], dtype=int))


def test_judge_pairwise_plan_bootstrapped_alone_is_the_agreement() -> None:
    rng = np.random.default_rng(16)
    item_ids = rng.integers(100, 160, 400)
    codes = rng.integers(0, 4, 400)
    judge = {int(i): int(rng.integers(0, 3)) for i in np.unique(item_ids)[::2]}
    plan = reconcile.judge_human_pairwise_plan(item_ids, codes, judge)
    [replicates] = joint_bootstrap([plan.target], 300, np.random.default_rng(1))
    expected = reconcile.judge_human_pairwise_agreement(
        item_ids.tolist(), codes, judge, n_resamples=300, rng=np.random.default_rng(1)
    )
    assert plan.result(replicates) == expected
    assert set(plan.target.units.tolist()) == set(judge)


def test_disagreement_flags_match_find_disagreements() -> None:
    rng = np.random.default_rng(17)
    item_ids = rng.integers(0, 80, 500)
    codes = rng.integers(0, 4, 500)
    judge = {i: int(rng.integers(0, 4)) for i in range(0, 80, 3)}
    flags = reconcile.disagreement_flags(item_ids, codes, judge=judge)
    found = reconcile.find_disagreements(item_ids.tolist(), codes.tolist(), judge=judge)
    flagged = np.flatnonzero(flags.flagged)
    assert [flags.items[k] for k in flagged] == [d.item for d in found]
    assert [flags.reasons(k) for k in flagged] == [d.reasons for d in found]
    # Vote counts keep both-bad apart from ties.
    k = flags.items.index(int(item_ids[0]))
    assert (
        flags.counts[k].tolist()
        == np.bincount(codes[item_ids == item_ids[0]], minlength=4).tolist()
    )


def test_rater_reports_from_columns_match_the_vote_records() -> None:
    rng = np.random.default_rng(18)
    n = 3_000
    rater = rng.integers(1, 8, n).astype(np.int32)
    item = rng.integers(10_000, 10_400, n)
    code = rng.integers(0, 4, n)
    left = rng.integers(-1, 2, n)
    seconds = np.where(rng.random(n) < 0.1, np.nan, rng.exponential(20, n))
    gold = {10_000 + k: int(rng.integers(0, 4)) for k in range(0, 400, 20)}
    gold[10_005] = [2, 3]  # several accepted answers
    thresholds = raters.RaterThresholds(
        min_median_seconds=15, min_majority_agreement=0.5, min_gold_accuracy=0.5
    )
    records = [
        Vote(
            rater=int(r),
            item=int(i),
            choice=int(c),
            left=None if lf < 0 else int(lf),
            seconds=None if np.isnan(s) else float(s),
        )
        for r, i, c, lf, s in zip(rater, item, code, left, seconds, strict=True)
    ]
    expected = raters.rater_reports(records, gold=gold, thresholds=thresholds)
    got = raters.rater_reports_from_columns(
        raters=rater, items=item, codes=code, left=left, seconds=seconds, gold=gold,
        thresholds=thresholds,
    )  # fmt: skip
    assert repr(got) == repr(expected)  # repr: nan (a rater without gold votes) equals itself


def test_rater_columns_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="one entry per vote"):
        raters.rater_reports_from_columns(
            raters=[1, 2], items=[1], codes=[0, 1], left=[0, 1], seconds=[1.0, 2.0]
        )
    with pytest.raises(ValueError, match="gold answer"):
        raters.rater_reports_from_columns(
            raters=np.array([1]), items=np.array([7]), codes=[0], left=[0], seconds=[1.0],
            gold={7: 9},
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Array helpers


def reference_first_seen(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    distinct, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return distinct[order], rank[inverse.ravel()]


@pytest.mark.parametrize("span", [3, 1_000, 10**12], ids=["tiny", "compact", "sparse"])
def test_first_seen_integers_match_np_unique(span: int) -> None:
    rng = np.random.default_rng(span % 97)
    for _ in range(20):
        values = rng.integers(-50, span, int(rng.integers(1, 3_000)))
        distinct, index = first_seen_integers(values)
        expected_distinct, expected_index = reference_first_seen(values)
        assert np.array_equal(distinct, expected_distinct)
        assert np.array_equal(index, expected_index)
        assert distinct.dtype == values.dtype


def test_first_seen_integers_of_nothing_and_beyond_int64() -> None:
    distinct, index = first_seen_integers(np.zeros(0, dtype=np.int64))
    assert distinct.size == 0 and index.size == 0
    huge = np.array([2**63 + 5, 2**63 + 1, 2**63 + 5], dtype=np.uint64)
    distinct, index = first_seen_integers(huge)
    assert distinct.tolist() == [2**63 + 5, 2**63 + 1] and index.tolist() == [0, 1, 0]


def test_index_items_reads_integer_arrays_as_lists() -> None:
    values = np.array([30, 10, 30, 20, 10])
    assert index_items(values)[0] == index_items(values.tolist())[0] == (30, 10, 20)
    assert np.array_equal(index_items(values)[1], index_items(values.tolist())[1])
    assert all(type(item) is int for item in index_items(values)[0])


def test_sorted_unique_and_duplicates() -> None:
    values = np.array([3.0, 1.0, 3.0, 2.0, 1.0])
    assert sorted_unique(values).tolist() == [1.0, 2.0, 3.0]
    assert sorted_unique(np.array([5])).tolist() == [5]
    assert has_duplicates(values) and not has_duplicates(np.array([1, 2, 3]))
    assert not has_duplicates(np.zeros(0))
