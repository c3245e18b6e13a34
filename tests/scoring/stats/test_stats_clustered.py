"""Item-clustered score statistics (scoring.stats.clustered)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scoring.stats.clustered import cluster_score_test, item_totals


def test_votes_on_one_item_count_as_one_cluster() -> None:
    # Three identical votes on one item carry the information of one item, not three.
    one_item = cluster_score_test([[0, 3, 0, 0]])
    assert one_item.n_items == 1 and one_item.n_votes == 3
    assert one_item.z == pytest.approx(1.0)
    assert math.isnan(one_item.se)


def test_score_statistic_is_the_self_normalised_sum_of_item_residuals() -> None:
    counts = np.array([[0, 2, 1, 0], [1, 1, 0, 1], [2, 0, 0, 0]])
    residuals = np.array([2.5 - 1.5, 1.5 - 1.5, 0.0 - 1.0])
    result = cluster_score_test(counts)
    assert result.z == pytest.approx(residuals.sum() / math.sqrt((residuals**2).sum()))
    assert result.estimate == pytest.approx(4.0 / 8.0)


def test_design_effect_is_one_for_one_vote_per_item_and_grows_with_correlated_votes() -> None:
    rng = np.random.default_rng(3)
    single = np.zeros((400, 4), dtype=int)
    single[np.arange(400), rng.integers(0, 2, 400)] = 1
    assert cluster_score_test(single).design_effect == pytest.approx(1.0, abs=0.01)
    # Items whose three raters always agree: the design effect approaches 3.
    agreeing = np.zeros((400, 4), dtype=int)
    agreeing[np.arange(400), rng.integers(0, 2, 400)] = 3
    result = cluster_score_test(agreeing)
    assert result.design_effect == pytest.approx(3.0, rel=0.02)
    assert result.effective_n == pytest.approx(400, rel=0.02)


def test_items_without_votes_are_dropped_and_bad_shapes_refused() -> None:
    assert item_totals([[0, 0, 0, 0], [1, 0, 0, 0]]).votes.tolist() == [1]
    with pytest.raises(ValueError, match="shape"):
        cluster_score_test([[1, 2, 3]])
    with pytest.raises(ValueError, match="non-negative"):
        cluster_score_test([[-1, 0, 0, 0]])


def test_no_votes_and_all_ties_give_no_evidence() -> None:
    assert cluster_score_test(np.zeros((0, 4), dtype=int)).p_value == 1.0
    assert cluster_score_test([[0, 0, 2, 0], [0, 0, 1, 1]]).p_value == 1.0
