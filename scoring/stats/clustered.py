"""Item-clustered preference statistics: the item, not the vote, is the unit of inference.

A study puts several raters on each item, so votes on one item are correlated (they share the
item's difficulty and the two outputs' real difference). Counting votes as independent
observations understates the variance by the design effect. Here every statistic is built from
per-item totals: item ``i`` has ``m_i`` votes whose preference scores ``x_ij`` (tuned = 1,
tie and both-bad = 1/2, base = 0: the MT-Bench / AlpacaEval convention of
``scoring.stats.votes``) sum to ``s_i``.

* Estimate: the vote-weighted win rate ``p = sum(s_i) / sum(m_i)`` (a ratio estimator).
* Cluster-robust (sandwich) variance of ``p`` (Liang & Zeger 1986; Cameron & Miller 2015, "A
  Practitioner's Guide to Cluster-Robust Inference", with the ``G / (G - 1)`` small-sample
  factor): ``V = G / (G - 1) * sum((s_i - p m_i)^2) / (sum m_i)^2`` over ``G`` items.
* Score test of ``H0: p = 1/2`` with the variance estimated under the null from the same item
  residuals: ``Z = sum(s_i - m_i / 2) / sqrt(sum((s_i - m_i / 2)^2))``. It is invariant to how
  votes are spread over items and is the statistic Miller (2024, "Adding Error Bars to Evals",
  arXiv 2411.00640) recommends for clustered evaluations.
* Design effect: ``V`` over the variance the same votes would have if independent
  (Kish 1965); ``effective_n = n_votes / design_effect`` independent votes.

Input everywhere is an ``(n_items, 4)`` array of per-item vote counts in the code order of
``scoring.stats.votes`` (``[base, tuned, tie, both_bad]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from scoring.stats.votes import BASE, BOTH_BAD, TIE, TUNED


@dataclass(frozen=True)
class ItemTotals:
    """Per-item vote counts and preference-score sums (ties and both-bad as half)."""

    votes: np.ndarray
    scores: np.ndarray
    tuned: np.ndarray
    base: np.ndarray


@dataclass(frozen=True)
class ClusteredScore:
    """The item-clustered estimate and score test of one study.

    Attributes:
        estimate: vote-weighted win rate, ties as half (``nan`` without votes).
        se: cluster-robust standard error of ``estimate`` (``nan`` below two items).
        z: score statistic for ``H0: win rate = 1/2`` (0 when every item's residual is 0).
        p_value: two-sided normal p-value of ``z`` (1 when ``z`` is 0).
        n_items, n_votes: clusters and votes.
        design_effect: clustered over independent-vote variance (``nan`` when undefined).
        effective_n: ``n_votes / design_effect``, independent-vote equivalents.
    """

    estimate: float
    se: float
    z: float
    p_value: float
    n_items: int
    n_votes: int
    design_effect: float
    effective_n: float


def check_counts(counts: np.ndarray | list) -> np.ndarray:
    """Validates an ``(n_items, 4)`` array of non-negative integer vote counts."""
    array = np.asarray(counts)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"counts must have shape (n_items, 4), got {array.shape}")
    if array.size and (not np.issubdtype(array.dtype, np.integer) or array.min() < 0):
        raise ValueError("counts must be non-negative integers")
    return array.astype(np.int64, copy=False)


def item_totals(counts: np.ndarray | list) -> ItemTotals:
    """Votes and preference-score sums per item; items without votes are dropped."""
    array = check_counts(counts)
    votes = array.sum(axis=1)
    array = array[votes > 0]
    votes = votes[votes > 0]
    scores = array[:, TUNED] + 0.5 * (array[:, TIE] + array[:, BOTH_BAD])
    return ItemTotals(
        votes=votes, scores=scores.astype(np.float64), tuned=array[:, TUNED], base=array[:, BASE]
    )


def cluster_score_test(counts: np.ndarray | list, *, null: float = 0.5) -> ClusteredScore:
    """Item-clustered win rate, its sandwich standard error, the null-variance score test and
    the design effect (see the module docstring)."""
    totals = item_totals(counts)
    n_items = int(totals.votes.size)
    n_votes = int(totals.votes.sum())
    if n_votes == 0:
        nan = float("nan")
        return ClusteredScore(nan, nan, 0.0, 1.0, 0, 0, nan, nan)
    estimate = float(totals.scores.sum() / n_votes)
    residual = totals.scores - estimate * totals.votes
    se = float("nan")
    if n_items > 1:
        se = math.sqrt(n_items / (n_items - 1) * float(residual @ residual)) / n_votes
    null_residual = totals.scores - null * totals.votes
    denominator = math.sqrt(float(null_residual @ null_residual))
    z = float(null_residual.sum()) / denominator if denominator > 0 else 0.0
    p_value = float(2.0 * ndtr(-abs(z))) if z else 1.0
    # Variance of the same votes taken as independent: each vote's squared deviation from p.
    tuned, base = totals.tuned.sum(), totals.base.sum()
    halves = n_votes - tuned - base
    vote_ss = tuned * (1 - estimate) ** 2 + base * estimate**2 + halves * (0.5 - estimate) ** 2
    iid_var = vote_ss / (n_votes - 1) / n_votes if n_votes > 1 else float("nan")
    design_effect = float("nan")
    if n_items > 1 and iid_var > 0:
        design_effect = float(se**2 / iid_var)
    effective_n = float(n_votes / design_effect) if design_effect > 0 else float("nan")
    return ClusteredScore(
        estimate=estimate,
        se=se,
        z=z,
        p_value=p_value,
        n_items=n_items,
        n_votes=n_votes,
        design_effect=design_effect,
        effective_n=effective_n,
    )
