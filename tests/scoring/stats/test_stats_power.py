"""Study planning: items needed and what a study can detect (scoring.stats.power)."""

from __future__ import annotations

import math

import pytest
from scipy.stats import norm

from scoring.stats.power import (
    agreement_to_icc,
    gate_reach,
    items_needed,
    votes_per_item_options,
)


def test_one_vote_per_item_without_ties_is_the_textbook_sample_size() -> None:
    # (z_0.975 + z_0.8)^2 * 0.25 / 0.05^2 = 784.9 votes (normal); t on n - 1 df adds at most one.
    plan = items_needed(difference=0.05, votes_per_item=1, icc=0.0)
    textbook = (norm.ppf(0.975) + norm.ppf(0.8)) ** 2 * 0.25 / 0.05**2
    assert plan.n_items in (math.ceil(textbook), math.ceil(textbook) + 1)
    assert plan.design_effect == 1.0 and plan.n_votes == plan.n_items
    assert "0.55 against 0.50" in plan.summary and f"{plan.n_items:,} items" in plan.summary


def test_design_effect_scales_the_votes_and_ties_shrink_them() -> None:
    base = items_needed(votes_per_item=1, icc=0.0)
    clustered = items_needed(votes_per_item=3, icc=0.5)
    assert clustered.design_effect == pytest.approx(2.0)
    # Same effective votes: 3 votes per item at deff 2 are worth 1.5 independent votes.
    assert clustered.effective_votes == pytest.approx(base.effective_votes, rel=0.01)
    assert clustered.n_items == pytest.approx(base.n_items / 1.5, rel=0.01)
    # Perfect agreement: extra votes per item buy nothing.
    assert items_needed(votes_per_item=5, icc=1.0).n_items == pytest.approx(base.n_items, abs=1)
    assert items_needed(votes_per_item=1, icc=0.0, tie_share=0.4).n_items < base.n_items


def test_agreement_mapping() -> None:
    assert agreement_to_icc(icc=0.4).icc == 0.4
    interval = agreement_to_icc(krippendorff_alpha=0.6)
    assert interval.icc == 0.6 and "interval alpha" in interval.source
    nominal = agreement_to_icc(krippendorff_alpha=0.6, alpha_level="nominal", tie_share=0.2)
    assert "understates" in nominal.note
    plan = items_needed(krippendorff_alpha=0.6, alpha_level="nominal", tie_share=0.2)
    assert "understates" in plan.summary
    with pytest.raises(ValueError, match="exactly one"):
        agreement_to_icc(icc=0.1, krippendorff_alpha=0.2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        agreement_to_icc(icc=-0.1)
    with pytest.raises(ValueError, match="difference"):
        items_needed(difference=0.45, icc=0.2, tie_share=0.3)


def test_gate_reach_agrees_with_the_plan_and_refuses_tiny_studies() -> None:
    plan = items_needed(difference=0.05, votes_per_item=3, icc=0.4, tie_share=0.2)
    reach = gate_reach(plan.n_items, 3, icc=0.4, tie_share=0.2)
    assert reach.can_pass
    assert reach.detectable_difference == pytest.approx(0.05, abs=0.001)
    assert 0 < reach.critical_difference < reach.detectable_difference
    assert "detects a true win rate of 0.55" in reach.summary
    tiny = gate_reach(3, 3, icc=0.4)
    assert not tiny.can_pass and "cannot pass the gate" in tiny.summary
    with pytest.raises(ValueError, match="n_items"):
        gate_reach(0, 3, icc=0.4)


def test_votes_per_item_options_trade_items_for_votes() -> None:
    plans = votes_per_item_options(icc=0.3, tie_share=0.2)
    assert [p.votes_per_item for p in plans] == [1, 2, 3, 5]
    items = [p.n_items for p in plans]
    votes = [p.n_votes for p in plans]
    assert items == sorted(items, reverse=True)  # more votes per item, fewer items
    assert votes == sorted(votes)  # ... but more votes in all
    with pytest.raises(ValueError, match="at least one"):
        votes_per_item_options(icc=0.3, options=())
