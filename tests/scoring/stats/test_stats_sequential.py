"""Group-sequential boundaries, Bayesian stopping and the votes-still-needed estimate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta, norm

from scoring.stats.sequential import (
    obrien_fleming_boundaries,
    obrien_fleming_spending,
    sequential_decision,
)


def test_boundaries_match_gsdesign_reference() -> None:
    # gsDesign(k=5, test.type=2, alpha=0.025, sfu=sfLDOF) / ldbounds, equally spaced looks:
    # 4.8769, 3.3569, 2.6803, 2.2898, 2.0310.
    bounds = obrien_fleming_boundaries([0.2, 0.4, 0.6, 0.8, 1.0])
    assert bounds == pytest.approx([4.8769, 3.3569, 2.6803, 2.2898, 2.0310], abs=1e-3)
    # Two looks: 2.9626, 1.9686.
    assert obrien_fleming_boundaries([0.5, 1.0]) == pytest.approx([2.9626, 1.9686], abs=1e-3)


def test_single_look_is_the_fixed_sample_test() -> None:
    assert obrien_fleming_boundaries([1.0]) == pytest.approx([norm.isf(0.025)], abs=1e-9)
    assert float(obrien_fleming_spending(1.0, 0.05)) == pytest.approx(0.05, abs=1e-12)
    assert float(obrien_fleming_spending(0.5, 0.05)) < 0.01


def test_boundaries_control_type_one_error_by_simulation() -> None:
    fractions = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    bounds = np.array(obrien_fleming_boundaries(fractions))
    rng = np.random.default_rng(0)
    increments = rng.normal(size=(40_000, 5)) * np.sqrt(np.diff(np.concatenate([[0], fractions])))
    z = np.cumsum(increments, axis=1) / np.sqrt(fractions)
    rejected = (np.abs(z) >= bounds).any(axis=1).mean()
    assert rejected == pytest.approx(0.05, abs=0.005)


def test_frequentist_decisions() -> None:
    undecided = sequential_decision(60, 40, 10, look=2, max_looks=5)
    assert not undecided.decided and undecided.direction is None
    assert undecided.method == "obrien_fleming"
    assert undecided.statistic == pytest.approx(20 / np.sqrt(100))
    assert undecided.threshold == pytest.approx(3.3569, abs=1e-3)
    assert undecided.information_fraction == pytest.approx(0.4)
    assert undecided.win_rate == pytest.approx((60 + 5) / 110)
    assert undecided.additional_votes >= 1

    tuned = sequential_decision(120, 60, 10, look=2, max_looks=5)
    assert tuned.decided and tuned.direction == "tuned" and tuned.additional_votes == 0
    base = sequential_decision(60, 120, 10, look=2, max_looks=5)
    assert base.decided and base.direction == "base"

    # The same z is decisive at the final look but not at the first.
    assert sequential_decision(60, 36, look=5, max_looks=5).decided
    assert not sequential_decision(60, 36, look=1, max_looks=5).decided


def test_ties_do_not_change_the_frequentist_statistic() -> None:
    a = sequential_decision(70, 50, 0, look=3, max_looks=3)
    b = sequential_decision(70, 50, 80, look=3, max_looks=3)
    c = sequential_decision(70, 50, 80, look=3, max_looks=3, tie_handling="exclude")
    assert a.statistic == b.statistic == c.statistic
    assert b.win_rate == pytest.approx((70 + 40) / 200)
    assert c.win_rate == pytest.approx(70 / 120)


def test_uneven_information_fractions() -> None:
    result = sequential_decision(
        80, 50, look=2, max_looks=3, information_fractions=[0.3, 0.65, 1.0]
    )
    assert result.information_fraction == pytest.approx(0.65)
    assert result.threshold == pytest.approx(
        obrien_fleming_boundaries([0.3, 0.65, 1.0])[1], abs=1e-12
    )


def test_bayesian_decision_uses_the_beta_posterior() -> None:
    result = sequential_decision(30, 18, 4, look=1, max_looks=1, method="bayes")
    expected = beta.sf(0.5, 1 + 30 + 2, 1 + 18 + 2)
    assert result.method == "bayes"
    assert result.statistic == pytest.approx(expected)
    assert result.decided == (expected > 0.975)
    excluded = sequential_decision(
        30, 18, 4, look=1, max_looks=1, method="bayes", tie_handling="exclude", prior=(2, 2)
    )
    assert excluded.statistic == pytest.approx(beta.sf(0.5, 32, 20))
    strong = sequential_decision(10, 60, look=1, max_looks=1, method="bayes")
    assert strong.decided and strong.direction == "base"


def test_additional_votes_estimate() -> None:
    # p_d = 0.55 on 100 decisive votes, final boundary 1.96: needs 1.96^2 / (4 * 0.05^2) = 385
    # decisive votes; no ties -> 285 more.
    decisive_needed = norm.isf(0.025) ** 2 / (4 * 0.05**2)
    result = sequential_decision(55, 45, look=1, max_looks=1)
    assert result.additional_votes == int(np.ceil(decisive_needed)) - 100
    assert not result.additional_votes_capped
    # With a 50% tie share the total doubles.
    tied = sequential_decision(55, 45, 100, look=1, max_looks=1)
    assert tied.additional_votes == int(np.ceil(decisive_needed / 0.5)) - 200
    # No effect at all: capped.
    flat = sequential_decision(50, 50, look=1, max_looks=1, max_additional_votes=500)
    assert (flat.additional_votes, flat.additional_votes_capped) == (500, True)
    assert sequential_decision(0, 0, look=1, max_looks=2).additional_votes_capped


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"look": 0, "max_looks": 3}, "look"),
        ({"look": 4, "max_looks": 3}, "look"),
        ({"look": 1, "max_looks": 3, "method": "pocock"}, "method"),
        ({"look": 1, "max_looks": 3, "tie_handling": "third"}, "tie_handling"),
        ({"look": 1, "max_looks": 2, "information_fractions": [0.5]}, "entries"),
        ({"look": 1, "max_looks": 2, "information_fractions": [0.6, 0.5]}, "increasing"),
        ({"look": 1, "max_looks": 1, "method": "bayes", "posterior_level": 0.4}, "posterior"),
        ({"look": 1, "max_looks": 1, "method": "bayes", "prior": (0, 1)}, "prior"),
    ],
)
def test_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sequential_decision(10, 5, **kwargs)


def test_negative_counts_rejected() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        sequential_decision(-1, 5, look=1, max_looks=1)
    with pytest.raises(ValueError, match="alpha"):
        obrien_fleming_boundaries([1.0], alpha=1.5)
