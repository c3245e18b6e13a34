"""Preference coding, majority vote and long-to-matrix conversion."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.stats.votes import (
    BASE,
    BOTH_BAD,
    TIE,
    TUNED,
    Vote,
    category_counts,
    check_choices,
    majority_vote,
    preference_scores,
    swap_systems,
    votes_to_matrix,
)


def test_codes_scores_and_swap() -> None:
    assert (BASE, TUNED, TIE, BOTH_BAD) == (0, 1, 2, 3)
    assert preference_scores([BASE, TUNED, TIE, BOTH_BAD]).tolist() == [0.0, 1.0, 0.5, 0.5]
    assert swap_systems([BASE, TUNED, TIE, BOTH_BAD]).tolist() == [TUNED, BASE, TIE, BOTH_BAD]
    assert check_choices(np.array([0.0, 3.0])).dtype == np.int64
    for bad in ([4], [-1], [0.5], [np.nan], ["tuned"]):
        with pytest.raises(ValueError, match="choices"):
            check_choices(bad)


def test_majority_vote_policies() -> None:
    items = ["x", "x", "x", "y", "y", "z", "z"]
    choices = [TUNED, TUNED, BASE, BASE, TUNED, TIE, BOTH_BAD]
    assert majority_vote(items, choices) == {"x": TUNED, "y": TIE, "z": TIE}
    assert majority_vote(items, choices, on_split="none") == {"x": TUNED, "y": None, "z": TIE}
    assert majority_vote(items, choices, both_bad_as_tie=False, on_split="none")["z"] is None
    _, counts = category_counts(items, choices)
    assert counts.tolist() == [[1, 2, 0, 0], [1, 1, 0, 0], [0, 0, 2, 0]]
    with pytest.raises(ValueError, match="on_split"):
        majority_vote(items, choices, on_split="coin")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="item ids"):
        majority_vote(items[:2], choices)


def test_votes_to_matrix() -> None:
    votes = [Vote("r1", "i1", TUNED), Vote("r2", "i1", BASE), Vote("r1", "i2", TIE)]
    matrix = votes_to_matrix(votes)
    assert matrix.raters == ("r1", "r2") and matrix.items == ("i1", "i2")
    np.testing.assert_array_equal(matrix.data, [[TUNED, TIE], [BASE, np.nan]])
    with pytest.raises(ValueError, match="more than once"):
        votes_to_matrix(votes + [Vote("r2", "i1", TIE)])
    assert votes_to_matrix([]).data.shape == (0, 0)


def test_index_items_integer_fast_path_matches_the_general_one() -> None:
    import numpy as np

    from scoring.stats.votes import index_items

    rng = np.random.default_rng(4)
    ids = rng.integers(0, 50, 500).tolist()
    fast = index_items(ids)
    slow = index_items([str(i) for i in ids])
    assert [str(i) for i in fast[0]] == list(slow[0])
    assert fast[1].tolist() == slow[1].tolist()
    # Mixed types take the general path and keep their ids.
    items, inverse = index_items([5, "x", 5.5, 5])
    assert items == (5, "x", 5.5) and inverse.tolist() == [0, 1, 2, 0]
