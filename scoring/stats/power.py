"""Planning an A/B preference study: items needed, and what a planned study can detect.

Votes on one item are correlated, so ``m`` votes on ``n`` items carry the information of
``n m / deff`` independent votes, with the design effect of equal clusters
``deff = 1 + (m - 1) ICC`` (Kish 1965, "Survey Sampling", section 5.4), where ``ICC`` is the
intraclass correlation of the vote score (tuned 1, tie 1/2, base 0) within an item.

Agreement to ICC: Krippendorff's alpha for *interval* data on the scores 0, 1/2, 1 estimates
this ICC (Krippendorff 2004, "Content Analysis", section 11.3: interval alpha is an ICC(1)-type
coefficient). In ``bench/clustered_sim.py`` the two agree to three decimals. The report's alpha is
*nominal* on the vote codes; without ties it equals the interval alpha on scores, but with ties it
is lower (measured there, 20% ties: nominal 0.30 / 0.60 / 0.85 against an ICC of 0.45 / 0.79 /
0.94), so planning with a nominal alpha as the ICC underestimates the design effect and the items
needed; the result says so.

Sample size: a two-sided level-``alpha`` test of ``H0: p = 1/2`` against ``p = 1/2 + delta``
with power ``1 - beta`` needs ``n_votes / deff = (q sqrt(v0) + z_{1-beta} sqrt(v1))^2 / delta^2``
effective votes (the one-sample normal formula, e.g. Chow, Shao & Wang 2008, "Sample Size
Calculations in Clinical Research", section 4.1), with the per-vote variances under the null and
the alternative ``v(p) = p (1 - p) - tau / 4`` for a tie share ``tau`` (a tie scores 1/2, so ties
shrink the variance). ``q`` is Student's ``t`` on ``n_items - 1`` degrees of freedom, as in the
interval of :mod:`scoring.stats.winrate_inference`, found by iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm
from scipy.stats import t as student_t

AlphaLevel = Literal["interval", "nominal"]


@dataclass(frozen=True)
class Agreement:
    """The ICC a plan uses and where it came from."""

    icc: float
    source: str
    note: str


@dataclass(frozen=True)
class PowerPlan:
    """Items (and votes) needed to detect a win-rate difference.

    Attributes:
        n_items: items to put in the study.
        votes_per_item: votes per item (``m``).
        n_votes: ``n_items * votes_per_item``.
        difference: the win-rate difference to detect (``0.05``: 0.55 against 0.50).
        icc, icc_source: the intraclass correlation used and its origin.
        tie_share: expected share of ties (and both-bad votes).
        design_effect: ``1 + (m - 1) ICC``.
        effective_votes: ``n_votes / design_effect``.
        alpha, power: two-sided level and power.
        summary: one sentence for the researcher.
    """

    n_items: int
    votes_per_item: int
    n_votes: int
    difference: float
    icc: float
    icc_source: str
    tie_share: float
    design_effect: float
    effective_votes: float
    alpha: float
    power: float
    summary: str


@dataclass(frozen=True)
class GateReach:
    """What a planned study of ``n_items`` x ``votes_per_item`` can show.

    Attributes:
        n_items, votes_per_item, design_effect, effective_votes: the design.
        critical_difference: smallest observed win-rate excess over 1/2 whose interval clears
            1/2 (normal approximation).
        detectable_difference: true excess detected with probability ``power`` (``nan`` if no
            excess up to the largest possible one reaches that power).
        can_pass: whether the best possible outcome (every vote for tuned) passes
            :func:`scoring.stats.winrate_inference.win_rate_gate` (exact: evaluated on that
            outcome).
        summary: one sentence for the researcher.
    """

    n_items: int
    votes_per_item: int
    design_effect: float
    effective_votes: float
    critical_difference: float
    detectable_difference: float
    can_pass: bool
    summary: str


def agreement_to_icc(
    *,
    icc: float | None = None,
    krippendorff_alpha: float | None = None,
    alpha_level: AlphaLevel = "interval",
    tie_share: float = 0.0,
) -> Agreement:
    """The ICC of the vote score from an ICC or a Krippendorff alpha (see the module docstring).

    Raises:
        ValueError: neither or both given, a value outside [0, 1], an unknown ``alpha_level``.
    """
    if (icc is None) == (krippendorff_alpha is None):
        raise ValueError("give exactly one of icc or krippendorff_alpha")
    if alpha_level not in ("interval", "nominal"):
        raise ValueError(f"alpha_level must be 'interval' or 'nominal', got {alpha_level!r}")
    value = float(icc if icc is not None else krippendorff_alpha)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"the ICC / alpha must be in [0, 1] for planning, got {value}")
    if icc is not None:
        return Agreement(value, "icc", "")
    if alpha_level == "interval":
        return Agreement(value, "Krippendorff's interval alpha on the scores", "")
    note = ""
    if tie_share > 0:
        note = (
            " Nominal alpha with ties understates the score ICC, so this plan may be too small; "
            "use the interval alpha on the scores 0, 1/2, 1 if you can."
        )
    return Agreement(value, "Krippendorff's nominal alpha (taken as the ICC)", note)


def _vote_variance(p: float, tie_share: float) -> float:
    tau = min(tie_share, 2.0 * min(p, 1.0 - p))
    return max(p * (1.0 - p) - tau / 4.0, 1e-12)


def _check_common(votes_per_item: int, tie_share: float, alpha: float, power: float) -> None:
    if isinstance(votes_per_item, bool) or int(votes_per_item) != votes_per_item:
        raise ValueError("votes_per_item must be a whole number")
    if votes_per_item < 1:
        raise ValueError("votes_per_item must be at least 1")
    if not 0.0 <= tie_share < 1.0:
        raise ValueError(f"tie_share must be in [0, 1), got {tie_share}")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError("alpha and power must be in (0, 1)")


def items_needed(
    *,
    difference: float = 0.05,
    votes_per_item: int = 3,
    icc: float | None = None,
    krippendorff_alpha: float | None = None,
    alpha_level: AlphaLevel = "interval",
    tie_share: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
) -> PowerPlan:
    """Items needed to detect a win rate of ``1/2 + difference`` (see the module docstring).

    Raises:
        ValueError: a difference outside (0, 1/2 - tie_share/2], or as :func:`agreement_to_icc`,
            or bad ``votes_per_item``, ``tie_share``, ``alpha`` or ``power``.
    """
    _check_common(votes_per_item, tie_share, alpha, power)
    agreement = agreement_to_icc(
        icc=icc, krippendorff_alpha=krippendorff_alpha, alpha_level=alpha_level, tie_share=tie_share
    )
    largest = 0.5 - tie_share / 2.0
    if not 0.0 < difference <= largest:
        raise ValueError(
            f"difference must be in (0, {largest:g}] (with {tie_share:.0%} ties the win rate "
            "cannot pass 1 - ties / 2)"
        )
    deff = 1.0 + (votes_per_item - 1) * agreement.icc
    sd0 = math.sqrt(_vote_variance(0.5, tie_share))
    sd1 = math.sqrt(_vote_variance(0.5 + difference, tie_share))
    z_power = float(norm.ppf(power))
    quantile = float(norm.ppf(1.0 - alpha / 2.0))
    n_items = 2
    for _ in range(50):  # t on n_items - 1 df: a fixed point reached in a few steps
        effective = ((quantile * sd0 + z_power * sd1) / difference) ** 2
        n_items_new = max(2, math.ceil(effective * deff / votes_per_item - 1e-9))
        if n_items_new == n_items:
            break
        n_items = n_items_new
        quantile = float(student_t.ppf(1.0 - alpha / 2.0, n_items - 1))
    n_votes = n_items * votes_per_item
    summary = (
        f"To detect a win rate of {0.5 + difference:.2f} against 0.50 with {power:.0%} power "
        f"(two-sided alpha {alpha:g}), rate {n_items:,} items with {votes_per_item} vote(s) each "
        f"({n_votes:,} votes): with ICC {agreement.icc:.2f} ({agreement.source}) the design "
        f"effect is {deff:.2f}, so they count as {n_votes / deff:,.0f} independent votes."
        + agreement.note
    )
    return PowerPlan(
        n_items=n_items,
        votes_per_item=votes_per_item,
        n_votes=n_votes,
        difference=difference,
        icc=agreement.icc,
        icc_source=agreement.source,
        tie_share=tie_share,
        design_effect=deff,
        effective_votes=n_votes / deff,
        alpha=alpha,
        power=power,
        summary=summary,
    )


def votes_per_item_options(
    *,
    difference: float = 0.05,
    options: tuple[int, ...] = (1, 2, 3, 5),
    icc: float | None = None,
    krippendorff_alpha: float | None = None,
    alpha_level: AlphaLevel = "interval",
    tie_share: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
) -> tuple[PowerPlan, ...]:
    """:func:`items_needed` for each number of votes per item in ``options``: more votes per item
    need fewer items but more votes in all (unless the ICC is 0), so the cheapest design depends
    on whether items or votes cost more.

    Raises:
        ValueError: as :func:`items_needed`, or no options.
    """
    if not options:
        raise ValueError("give at least one number of votes per item")
    return tuple(
        items_needed(
            difference=difference,
            votes_per_item=m,
            icc=icc,
            krippendorff_alpha=krippendorff_alpha,
            alpha_level=alpha_level,
            tie_share=tie_share,
            alpha=alpha,
            power=power,
        )
        for m in options
    )


def gate_reach(
    n_items: int,
    votes_per_item: int,
    *,
    icc: float | None = None,
    krippendorff_alpha: float | None = None,
    alpha_level: AlphaLevel = "interval",
    tie_share: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
) -> GateReach:
    """Whether a study of ``n_items`` x ``votes_per_item`` can pass the win-rate gate at all,
    and its minimum detectable difference (see the module docstring).

    Raises:
        ValueError: ``n_items < 1``, or as :func:`items_needed`.
    """
    from scoring.stats.winrate_inference import win_rate_gate

    _check_common(votes_per_item, tie_share, alpha, power)
    if isinstance(n_items, bool) or int(n_items) != n_items or n_items < 1:
        raise ValueError("n_items must be a whole number >= 1")
    agreement = agreement_to_icc(
        icc=icc, krippendorff_alpha=krippendorff_alpha, alpha_level=alpha_level, tie_share=tie_share
    )
    deff = 1.0 + (votes_per_item - 1) * agreement.icc
    effective = n_items * votes_per_item / deff
    quantile = float(student_t.ppf(1.0 - alpha / 2.0, max(n_items - 1, 1)))
    sd0 = math.sqrt(_vote_variance(0.5, tie_share))
    critical = quantile * sd0 / math.sqrt(effective)
    z_power = float(norm.ppf(power))

    def shortfall(delta: float) -> float:
        sd1 = math.sqrt(_vote_variance(0.5 + delta, tie_share))
        return delta * math.sqrt(effective) - quantile * sd0 - z_power * sd1

    largest = 0.5 - tie_share / 2.0
    detectable = float("nan")
    if shortfall(largest) >= 0:
        detectable = float(brentq(shortfall, 1e-9, largest, xtol=1e-10))
    best = np.zeros((n_items, 4), dtype=np.int64)
    best[:, 1] = votes_per_item
    can_pass = win_rate_gate(best, confidence=1.0 - alpha).status == "pass"
    design = f"{n_items:,} items x {votes_per_item} vote(s)"
    if not can_pass:
        summary = (
            f"A study of {design} cannot pass the gate: even if every vote preferred the tuned "
            "system, the interval would not clear 0.50. Add items."
        )
    elif math.isnan(detectable):
        summary = (
            f"A study of {design} passes only with a near-unanimous result: no true win rate "
            f"reaches {power:.0%} power; add items."
        )
    else:
        summary = (
            f"A study of {design} (design effect {deff:.2f}) detects a true win rate of "
            f"{0.5 + detectable:.3f} with {power:.0%} power; an observed win rate needs to "
            f"exceed about {0.5 + critical:.3f} to pass."
        )
    return GateReach(
        n_items=int(n_items),
        votes_per_item=int(votes_per_item),
        design_effect=deff,
        effective_votes=effective,
        critical_difference=critical,
        detectable_difference=detectable,
        can_pass=can_pass,
        summary=summary + agreement.note,
    )
