"""Group-sequential boundaries, the item-level design with looks recorded once, and the legacy
vote-level decision (Bayesian stopping, votes-still-needed)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import beta, norm

from scoring.stats.clustered import cluster_score_test
from scoring.stats.sequential import (
    LookRecord,
    SequentialDesign,
    alpha_spending,
    obrien_fleming_boundaries,
    obrien_fleming_spending,
    planned_boundaries,
    pocock_spending,
    sequential_decision,
    sequential_look,
    sequential_status,
    spending_boundaries,
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


# --------------------------------------------------------------------------------------------
# Item-level design: looks recorded once, alpha spent once per look.


def items_counts(n_items: int, *, tuned_share: float = 0.5, raters: int = 3) -> np.ndarray:
    """Deterministic per-item counts: the first items go to tuned, the rest to base, unanimously,
    so that a share of ``tuned_share`` of the items favours tuned."""
    counts = np.zeros((n_items, 4), dtype=np.int64)
    tuned_items = round(n_items * tuned_share)
    counts[:tuned_items, 1] = raters
    counts[tuned_items:, 0] = raters
    return counts


def alternating_counts(n_items: int, raters: int = 3) -> np.ndarray:
    """Items alternately unanimous for tuned and for base: z stays 0 or 1 / sqrt(n)."""
    counts = np.zeros((n_items, 4), dtype=np.int64)
    counts[0::2, 1] = raters
    counts[1::2, 0] = raters
    return counts


def test_pocock_boundaries_match_gsdesign_reference() -> None:
    # gsDesign(k=5, test.type=2, alpha=0.025, sfu=sfLDPocock): 2.4380 2.4268 2.4102 2.3966 2.3860.
    bounds = spending_boundaries([0.2, 0.4, 0.6, 0.8, 1.0], spending="pocock")
    assert bounds == pytest.approx([2.4380, 2.4268, 2.4102, 2.3966, 2.3860], abs=1e-3)
    assert float(pocock_spending(1.0, 0.05)) == pytest.approx(0.05, abs=1e-12)


def test_spending_reaches_alpha_and_early_spending_does_not_round_to_zero() -> None:
    for spending in ("obrien_fleming", "pocock"):
        assert float(alpha_spending(1.0, 0.05, spending)) == pytest.approx(0.05, abs=1e-12)
    early = float(obrien_fleming_spending(1 / 30, 0.05))
    assert 0.0 < early < 1e-20
    with pytest.raises(ValueError, match="spending"):
        alpha_spending(0.5, 0.05, "haybittle")


def test_many_looks_control_type_one_error_by_simulation() -> None:
    # 30 looks (every 10 of 300 items): the Brownian score process crosses with probability alpha.
    fractions = np.arange(1, 31) / 30
    bounds = np.array(spending_boundaries(fractions))
    rng = np.random.default_rng(1)
    increments = rng.normal(size=(40_000, 30)) * np.sqrt(1 / 30)
    z = np.cumsum(increments, axis=1) / np.sqrt(fractions)
    assert (np.abs(z) >= bounds).any(axis=1).mean() == pytest.approx(0.05, abs=0.005)


def test_design_look_points() -> None:
    assert SequentialDesign(max_items=35).look_points == (10, 20, 30, 35)
    assert SequentialDesign(max_items=30).look_points == (10, 20, 30)
    assert SequentialDesign(max_items=50, min_items=25).look_points == (30, 40, 50)
    explicit = SequentialDesign(max_items=100, look_items=[20, 50], min_items=1)
    assert explicit.look_points == (20, 50, 100)
    assert explicit.look_every_items is None and explicit.look_items == (20, 50)
    assert SequentialDesign(max_items=5).look_points == (5,)
    assert SequentialDesign(max_items=50, min_items=200).look_points == (50,)


def test_design_round_trips_through_json() -> None:
    design = SequentialDesign(
        max_items=120, look_items=(30, 60), alpha=0.1, spending="pocock", created_from="settings"
    )
    again = SequentialDesign.from_dict(json.loads(json.dumps(design.as_dict())))
    assert again == design and again.look_points == design.look_points == (30, 60, 120)
    plain = SequentialDesign(max_items=300)
    assert SequentialDesign.from_dict(json.loads(json.dumps(plain.as_dict()))) == plain


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_items": 0}, "max_items"),
        ({"max_items": 10.5}, "max_items"),
        ({"max_items": 100, "look_every_items": 0}, "look_every_items"),
        ({"max_items": 100, "look_items": ()}, "empty"),
        ({"max_items": 100, "look_items": (50, 40)}, "increasing"),
        ({"max_items": 100, "look_items": (50, 150)}, "beyond"),
        ({"max_items": 100, "alpha": 1.5}, "alpha"),
        ({"max_items": 100, "alpha": True}, "alpha"),
        ({"max_items": 100, "spending": "haybittle"}, "spending"),
        ({"max_items": 100, "min_items": 0}, "min_items"),
    ],
)
def test_design_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SequentialDesign(**kwargs)


def test_design_from_dict_rejects_unknown_and_missing_fields() -> None:
    with pytest.raises(ValueError, match="maximum"):
        SequentialDesign.from_dict({"max_items": 10, "maximum": 3})
    with pytest.raises(ValueError, match="max_items"):
        SequentialDesign.from_dict({"alpha": 0.05})


def test_a_look_is_due_only_at_the_next_look_point() -> None:
    design = SequentialDesign(max_items=100)
    assert sequential_look(design, [], counts=alternating_counts(9)) is None
    first = sequential_look(design, [], counts=alternating_counts(10))
    assert first is not None and first.look == 1 and first.n_items == 10
    assert first.information_fraction == pytest.approx(0.1)
    assert first.decision == "continue"
    looks = [first]
    for n in (5, 10, 11, 19):  # 5: items went away; the recorded look stays, nothing new
        assert sequential_look(design, looks, counts=alternating_counts(n)) is None
    second = sequential_look(design, looks, counts=alternating_counts(20))
    assert second is not None and second.look == 2 and second.n_items == 20
    assert second.boundary == pytest.approx(spending_boundaries([0.1, 0.2])[1], abs=1e-12)


def test_reading_twice_spends_nothing() -> None:
    design = SequentialDesign(max_items=100)
    looks = [sequential_look(design, [], counts=alternating_counts(10))]
    counts = alternating_counts(15)
    first_read = sequential_status(design, looks, n_items=15)
    # Rebuilding the report: asking again for a look and reading the status again change nothing.
    assert sequential_look(design, looks, counts=counts) is None
    assert sequential_look(design, looks, counts=counts) is None
    assert sequential_status(design, looks, n_items=15) == first_read
    assert first_read.alpha_spent == looks[0].alpha_spent
    assert first_read.looks == 1 and first_read.next_look_items == 20
    assert first_read.items_to_next_look == 5 and first_read.items_remaining == 85


def test_late_look_spends_alpha_for_its_own_fraction() -> None:
    design = SequentialDesign(max_items=100)
    looks = [sequential_look(design, [], counts=alternating_counts(10))]
    late = sequential_look(design, looks, counts=alternating_counts(47))
    assert late is not None and late.look == 2 and late.n_items == 47
    assert late.boundary == pytest.approx(spending_boundaries([0.1, 0.47])[1], abs=1e-12)
    assert late.alpha_spent == pytest.approx(float(obrien_fleming_spending(0.47)), abs=1e-15)


def test_look_uses_the_item_clustered_statistic() -> None:
    rng = np.random.default_rng(3)
    counts = rng.multinomial(3, [0.4, 0.45, 0.1, 0.05], size=40)
    record = sequential_look(SequentialDesign(max_items=40, look_every_items=40), [], counts=counts)
    score = cluster_score_test(counts)
    assert record is not None
    assert (record.z, record.win_rate, record.n_votes) == (score.z, score.estimate, 120)


def test_equal_looks_give_the_published_obrien_fleming_boundaries() -> None:
    design = SequentialDesign(max_items=50)
    looks: list[LookRecord] = []
    for n in range(1, 51):
        record = sequential_look(design, looks, counts=alternating_counts(n))
        if record is not None:
            looks.append(record)
    assert [r.n_items for r in looks] == [10, 20, 30, 40, 50]
    assert [r.boundary for r in looks] == pytest.approx(
        [4.8769, 3.3569, 2.6803, 2.2898, 2.0310], abs=1e-3
    )
    assert [row["boundary"] for row in planned_boundaries(design)] == pytest.approx(
        [r.boundary for r in looks], abs=1e-12
    )


def test_final_look_caps_t_at_one_and_spends_exactly_alpha() -> None:
    design = SequentialDesign(max_items=50, alpha=0.05)
    looks = [sequential_look(design, [], counts=alternating_counts(20))]
    final = sequential_look(design, looks, counts=alternating_counts(64))
    assert final is not None and final.n_items == 64
    assert final.information_fraction == 1.0 and final.alpha_spent == pytest.approx(0.05, abs=1e-15)
    assert final.decision == "inconclusive" and final.final
    looks.append(final)
    assert sequential_look(design, looks, counts=alternating_counts(80)) is None
    status = sequential_status(design, looks)
    assert status.finished and not status.decided and status.direction is None
    assert (status.items_needed, status.next_look_items, status.items_to_next_look) == (
        0,
        None,
        None,
    )
    # The two looks' boundaries spend alpha(0.4) then the rest: in total exactly alpha.
    fractions = np.array([0.4, 1.0])
    bounds = np.array([r.boundary for r in looks])
    rng = np.random.default_rng(2)
    increments = rng.normal(size=(100_000, 2)) * np.sqrt(np.diff(np.concatenate([[0], fractions])))
    z = np.cumsum(increments, axis=1) / np.sqrt(fractions)
    assert (np.abs(z) >= bounds).any(axis=1).mean() == pytest.approx(0.05, abs=0.003)


def test_a_decided_study_stays_decided() -> None:
    design = SequentialDesign(max_items=100)
    looks = [sequential_look(design, [], counts=items_counts(10, tuned_share=0.5))]
    crossing = sequential_look(design, looks, counts=items_counts(30, tuned_share=1.0))
    assert crossing is not None and crossing.decision == "tuned" and crossing.final
    assert crossing.z == pytest.approx(np.sqrt(30)) and crossing.z >= crossing.boundary
    looks.append(crossing)
    # More data that now favours base changes nothing: no new look, the decision holds.
    for n in (30, 60, 100):
        assert sequential_look(design, looks, counts=items_counts(n, tuned_share=0.1)) is None
    status = sequential_status(design, looks, n_items=100)
    assert status.decided and status.direction == "tuned" and status.finished
    assert (status.look, status.n_items, status.items_needed) == (2, 30, 0)
    assert status.alpha_spent == crossing.alpha_spent
    base = sequential_look(design, [looks[0]], counts=items_counts(30, tuned_share=0.0))
    assert base is not None and base.decision == "base"


def test_recorded_looks_must_match_the_design() -> None:
    design = SequentialDesign(max_items=100)
    looks = [sequential_look(design, [], counts=alternating_counts(10))]
    tampered = replace(looks[0], boundary=3.0)
    with pytest.raises(ValueError, match="boundary"):
        sequential_look(design, [tampered], counts=alternating_counts(20))
    with pytest.raises(ValueError, match="boundary"):
        sequential_status(SequentialDesign(max_items=100, alpha=0.1), looks)
    with pytest.raises(ValueError, match="numbered"):
        sequential_status(design, [replace(looks[0], look=2)])
    with pytest.raises(ValueError, match="fraction"):
        sequential_status(SequentialDesign(max_items=200), looks)
    second = sequential_look(design, looks, counts=alternating_counts(20))
    with pytest.raises(ValueError, match="no more items"):
        sequential_status(design, [looks[0], replace(second, n_items=10)])


def test_records_and_status_are_json_ready() -> None:
    design = SequentialDesign(max_items=100)
    record = sequential_look(design, [], counts=items_counts(10, tuned_share=0.7))
    again = LookRecord.from_dict(json.loads(json.dumps(record.as_dict())))
    assert again == record
    with pytest.raises(ValueError, match="missing"):
        LookRecord.from_dict({"look": 1})
    status = sequential_status(design, [again], n_items=12)
    assert json.loads(json.dumps(status.as_dict()))["items_to_next_look"] == 8
    empty = sequential_status(design, [])
    assert empty.decision == "not_started" and empty.alpha_spent == 0.0
    assert (empty.next_look_items, empty.items_needed, empty.items_needed_capped) == (10, 100, True)
    assert empty.votes_needed is None


def test_items_needed_projects_the_current_effect_onto_the_planned_boundaries() -> None:
    design = SequentialDesign(max_items=300)
    looks = [sequential_look(design, [], counts=items_counts(10, tuned_share=0.5))]
    looks.append(sequential_look(design, looks, counts=items_counts(20, tuned_share=0.7)))
    last = looks[-1]
    assert last.decision == "continue" and last.z == pytest.approx(8 / np.sqrt(20))
    # Independently: planned boundaries for looks at 10, 20 (recorded), 30, ..., 300.
    future = np.arange(30, 301, 10)
    bounds = spending_boundaries(np.concatenate([[10, 20], future]) / 300)[2:]
    projected = last.z * np.sqrt(future / 20)
    first = future[np.argmax(projected >= bounds)]
    status = sequential_status(design, looks, n_items=23)
    assert not status.items_needed_capped and status.items_needed == first - 23
    assert status.votes_needed == 3 * status.items_needed
    # No effect: the estimate is capped at the items left.
    flat = [sequential_look(design, [], counts=alternating_counts(10))]
    assert flat[0].z == 0.0
    flat_status = sequential_status(design, flat, n_items=12)
    assert (flat_status.items_needed, flat_status.items_needed_capped) == (288, True)


def test_clustered_null_false_positive_rate_with_a_look_every_10_items() -> None:
    # 1,000 studies of 100 items x 3 raters with strongly item-clustered votes (each item has
    # its own tuned probability, Beta(0.3, 0.3): raters mostly agree) and a true win rate of
    # exactly 1/2. Reading after every 5 items, looks recorded as the API says. The vote-level
    # sign test on the same data rejects in about a quarter of the studies.
    rng = np.random.default_rng(20261127)
    design = SequentialDesign(max_items=100)
    studies, rejected, vote_level_rejected = 1000, 0, 0
    vote_bounds = np.array(spending_boundaries(np.arange(1, 11) / 10))
    for _ in range(studies):
        p_tuned = rng.beta(0.3, 0.3, size=100)
        tuned = rng.binomial(3, p_tuned)
        counts = np.zeros((100, 4), dtype=np.int64)
        counts[:, 1], counts[:, 0] = tuned, 3 - tuned
        looks: list[LookRecord] = []
        for n in range(5, 101, 5):
            record = sequential_look(design, looks, counts=counts[:n])
            if record is not None:
                looks.append(record)
                if record.final:
                    break
        rejected += looks[-1].decision in ("tuned", "base")
        wins = np.cumsum(2 * tuned - 3)[9::10]
        vote_level_rejected += bool(
            (np.abs(wins / np.sqrt(3 * np.arange(10, 101, 10))) >= vote_bounds).any()
        )
    se = np.sqrt(0.05 * 0.95 / studies)
    assert rejected / studies <= 0.05 + 3 * se  # 7.1%: fails if alpha were re-spent per read
    assert rejected / studies >= 0.05 - 3 * se  # and the test is not uselessly conservative
    assert vote_level_rejected / studies > 0.15
