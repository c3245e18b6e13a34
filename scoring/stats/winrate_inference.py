"""Win rate of tuned over base with item-clustered inference, and the release-gate criterion.

The item is the unit of inference (see :mod:`scoring.stats.clustered` for the formulas). Point
estimates are the usual ones: the win rate with ties as half (MT-Bench / AlpacaEval convention)
and without ties (tuned wins over decisive votes). What changes is the uncertainty:

* Primary interval (``ci``, ``ci_no_ties``): the item-clustered score interval on the effective
  sample size (Korn & Graubard 1998, Student ``t`` on ``items - 1`` degrees of freedom). It is
  analytic, so it is identical on every run (a release gate must not rest on Monte-Carlo noise),
  it never collapses to a point (one vote, every vote one way), and in the simulation of
  ``bench/bench_ci_coverage.py`` (30 to 1,000 items, 1 to 5 votes per item, low to high agreement,
  rater bias, ties, win rates 0.5 and 0.65) its coverage stays near 95% (94% to 97.5% per cell;
  the highest with 30 near-unanimous items, where the data are nearly binary and discrete). An item
  bootstrap would estimate the same variance but needs a seed, tends to under-cover with few
  items, and collapses to a point when every vote agrees; it is not used here.
* p-value (``p_value``): the sign-flip randomisation test on item totals, computed exactly
  (:func:`scoring.stats.clustered.sign_flip_test`); with one vote per item it is the exact sign
  test. The reported p is the mid-p (its test has the size nearest alpha among deterministic
  tests; the choice against the exact p and a hybrid is argued with arithmetic in
  :mod:`scoring.stats.clustered`); ``p_method`` gives the exact size of the mid-p and exact tests
  for the observed items, so a reader sees when discreteness moves them off alpha.
  ``p_value_exact`` is the conservative exact p.
  When the test does not reject 1/2 at ``1 - confidence`` but the
  normal-theory interval excludes 1/2 (few informative items, e.g. 4 tuned wins and 16 ties),
  the interval is extended to 1/2 and a warning says so, so interval and test never disagree.
* Panel interval (``panel_ci``): the two-way (items and raters) cluster-robust score interval
  (Cameron, Gelbach & Miller 2011) with a small-sample factor that keeps the variance unbiased
  when raters are few and share items (see :func:`scoring.stats.clustered.two_way_variance`),
  with Satterthwaite degrees of freedom: the between-item part
  of the variance counts with ``items - 1``, the rest (raters and vote noise, estimated from the
  rater totals) with ``raters - 1``. The item
  interval generalises to new items judged by *this* panel; the panel interval to new items judged
  by raters drawn like these. It is usually the wider one (it adds the between-rater variance),
  though with little rater variance and few raters either can be. It needs each vote's
  rater; with fewer than 3 raters, or one rater casting more than half of the votes, it comes with
  a warning (a panel that small is a sample of size one or two from the rater population).

Planning (items needed, what a study can detect) is in :mod:`scoring.stats.power`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from scoring.stats._resampling import check_confidence
from scoring.stats.arrays import has_duplicates
from scoring.stats.clustered import (
    Moments,
    check_counts,
    cluster_variance,
    effective_design_effect,
    moments_from_totals,
    satterthwaite_df,
    score_interval,
    sign_flip_test,
    two_way_variance,
)
from scoring.stats.votes import BASE, BOTH_BAD, TIE, TUNED, check_choices

GateMethod = Literal["item", "panel"]
GateStatus = Literal["pass", "fail", "undecided"]

TOP_RATER_SHARE_WARNING = 0.5
MIN_PANEL_RATERS = 3
FEW_ITEMS = 10

ITEM_METHOD = "item-clustered score interval (Korn-Graubard effective n, t on items - 1 df)"
PANEL_METHOD = (
    "two-way (items x raters) cluster-robust score interval, small-sample corrected, "
    "t with Satterthwaite df"
)
P_METHOD = "sign-flip randomisation test on item totals, exact distribution, mid-p"
P_SIZES = "size at {level:.0%} for these items: mid-p {mid:.1%}, exact p {exact:.1%}"


@dataclass(frozen=True)
class WinRateInference:
    """Win rate of tuned over base with item-clustered intervals and test.

    Attributes:
        win_rate: tuned wins + half the ties and both-bad votes, over all votes (``nan`` if none).
        win_rate_no_ties: tuned wins over decisive votes (``nan`` if none).
        n_votes, n_items: votes and items with at least one vote.
        tuned_wins, base_wins, ties: votes by outcome (``ties`` includes both-bad).
        ci: primary interval for ``win_rate`` (item-clustered); ``(nan, nan)`` without votes.
        ci_method: how ``ci`` was computed, with any fallback.
        ci_no_ties: the same interval for ``win_rate_no_ties``.
        p_value: two-sided mid-p of ``H0: win rate = 1/2`` (same for both tie conventions).
        p_value_exact: the conservative exact p of the same test.
        p_method: how the p-value was computed, with the exact size at ``1 - confidence`` of
            the mid-p and the exact test for these items.
        se: item-clustered (CR1) standard error of ``win_rate`` (``nan`` below two items).
        design_effect: variance over the variance of as many independent votes (at least 1;
            the largest plausible value when it cannot be estimated, see ``warnings``).
        effective_n: ``n_votes / design_effect``, independent-vote equivalents.
        confidence: two-sided level of every interval.
        n_raters: raters seen (``None`` without per-vote raters).
        top_rater_share: largest share of votes cast by one rater (``None`` without raters).
        panel_ci: interval for raters drawn like this panel (``None`` without per-vote raters).
        panel_method: how ``panel_ci`` was computed, or why it was not.
        warnings: plain sentences for the reader of the report.
        generalises_to_items, generalises_to_panel: one sentence each: what ``ci`` and
            ``panel_ci`` speak for.
    """

    win_rate: float
    win_rate_no_ties: float
    n_votes: int
    n_items: int
    tuned_wins: int
    base_wins: int
    ties: int
    ci: tuple[float, float]
    ci_method: str
    ci_no_ties: tuple[float, float]
    p_value: float
    p_value_exact: float
    p_method: str
    se: float
    design_effect: float
    effective_n: float
    confidence: float
    n_raters: int | None
    top_rater_share: float | None
    panel_ci: tuple[float, float] | None
    panel_method: str
    warnings: tuple[str, ...]
    generalises_to_items: str
    generalises_to_panel: str


@dataclass(frozen=True)
class WinRateGate:
    """Release-gate verdict on the win rate: deterministic (no resampling).

    Attributes:
        status: ``"pass"`` (interval above ``threshold``), ``"fail"`` (interval below it) or
            ``"undecided"`` (the interval contains it, or there are no votes).
        bound: the interval's lower bound (the number the gate compares with ``threshold``).
        upper: the interval's upper bound.
        threshold: the win rate the tuned system must exceed.
        confidence: two-sided level of the interval (the one-sided error of a pass is
            ``(1 - confidence) / 2``).
        method: ``"item"`` or ``"panel"`` and the interval's method.
        evidence: one sentence for the release record.
    """

    status: GateStatus
    bound: float
    upper: float
    threshold: float
    confidence: float
    method: str
    evidence: str


@dataclass(frozen=True)
class IntervalArrays:
    """Item-clustered intervals of one or many studies (arrays over studies)."""

    low: np.ndarray
    high: np.ndarray
    se: np.ndarray
    design_effect: np.ndarray
    estimable: np.ndarray


def clustered_intervals(
    scores: np.ndarray, votes: np.ndarray, ties: np.ndarray, *, confidence: float = 0.95
) -> IntervalArrays:
    """The primary interval for studies given as ``(n_studies, n_items)`` arrays of per-item
    score sums, vote counts and tie counts (the kernel of :func:`win_rate_inference`, exposed so
    the calibration bench runs the same code on thousands of studies at once)."""
    moments = moments_from_totals(scores, votes, ties)
    p, variance, vote_var = cluster_variance(moments)
    n = moments.n_votes
    with np.errstate(invalid="ignore", divide="ignore"):
        fallback = moments.votes_sq / n
    deff, estimable = effective_design_effect(variance, vote_var, n, fallback)
    with np.errstate(invalid="ignore", divide="ignore"):
        tie_share = moments.ties / n
    low, high = score_interval(p, tie_share, deff, n, moments.n_clusters - 1, confidence)
    return IntervalArrays(low, high, np.sqrt(variance), deff, estimable)


def panel_intervals(
    item: Moments, rater: Moments, *, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """The two-way (items x raters) interval from item and rater moments (arrays over studies)."""
    p, v_items, vote_var = cluster_variance(item)
    variance = two_way_variance(item, rater)
    n = item.n_votes
    fallback = np.fmax(item.votes_sq / n, rater.votes_sq / n)
    deff, _ = effective_design_effect(variance, vote_var, n, fallback, floor=0.0)
    # V = (V_items - V_votes) + V_raters: the first part is estimated from items (G - 1 df), the
    # rest, which includes the vote-level noise, from raters (R - 1 df).
    with np.errstate(invalid="ignore", divide="ignore"):
        between_items = np.clip(v_items - vote_var / n, 0.0, None)
    df = satterthwaite_df(
        (between_items, variance - between_items), (item.n_clusters - 1, rater.n_clusters - 1)
    )
    return score_interval(p, item.ties / n, deff, n, df, confidence)


def extend_unless_rejected(
    low: np.ndarray, high: np.ndarray, p_value: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Extend intervals to 1/2 where the sign-flip test does not reject 1/2; returns
    ``(low, high, extended)``."""
    extended = (np.asarray(p_value) >= 1.0 - confidence) & ((low > 0.5) | (high < 0.5))
    return (
        np.where(extended, np.minimum(low, 0.5), low),
        np.where(extended, np.maximum(high, 0.5), high),
        extended,
    )


def _fmt(ci: tuple[float, float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def counts_from_votes(
    item_index: Sequence[int] | np.ndarray, codes: Sequence[int] | np.ndarray
) -> np.ndarray:
    """``(n_items, 4)`` per-item counts from integer item indices (0..n_items-1) and codes."""
    items = np.asarray(item_index, dtype=np.int64)
    choices = check_choices(codes)
    if items.shape != choices.shape:
        raise ValueError(f"got {items.size} item indices but {choices.size} codes")
    if items.size and items.min() < 0:
        raise ValueError("item indices must be non-negative")
    n_items = int(items.max()) + 1 if items.size else 0
    flat = np.bincount(items * 4 + choices, minlength=n_items * 4)
    return flat.reshape(n_items, 4)


def _panel(
    counts: np.ndarray,
    item_index: np.ndarray,
    rater_index: np.ndarray,
    codes: np.ndarray,
    confidence: float,
) -> tuple[tuple[float, float], int, float, list[str]]:
    """Panel interval, number of raters, top rater's share, warnings."""
    raters = np.asarray(rater_index, dtype=np.int64)
    items = np.asarray(item_index, dtype=np.int64)
    choices = check_choices(codes)
    if not (raters.shape == items.shape == choices.shape):
        raise ValueError("item_index, rater_index and codes must have the same length")
    if raters.size and raters.min() < 0:
        raise ValueError("rater indices must be non-negative")
    from_votes = counts_from_votes(items, choices)
    padded = np.zeros((max(len(from_votes), len(counts)), 4), dtype=np.int64)
    padded[: len(from_votes)] = from_votes
    given = np.zeros_like(padded)
    given[: len(counts)] = counts
    if not items.size or not np.array_equal(padded, given):
        raise ValueError("counts do not match the per-vote item_index and codes")
    pairs = items * (int(raters.max()) + 1) + raters
    if has_duplicates(pairs):
        raise ValueError("a rater has more than one vote on an item; give one vote per pair")
    score = np.array([0.0, 1.0, 0.5, 0.5])[choices]
    tie = ((choices == TIE) | (choices == BOTH_BAD)).astype(np.float64)
    n_items = int(items.max()) + 1
    n_raters_index = int(raters.max()) + 1
    item_m = moments_from_totals(
        np.bincount(items, score, n_items)[None],
        np.bincount(items, minlength=n_items)[None],
        np.bincount(items, tie, n_items)[None],
    )
    per_rater = np.bincount(raters, minlength=n_raters_index)
    rater_m = moments_from_totals(
        np.bincount(raters, score, n_raters_index)[None],
        per_rater[None],
        np.bincount(raters, tie, n_raters_index)[None],
    )
    low, high = panel_intervals(item_m, rater_m, confidence=confidence)
    n_raters = int((per_rater > 0).sum())
    top_share = float(per_rater.max() / raters.size)
    warnings = []
    if n_raters < MIN_PANEL_RATERS:
        warnings.append(
            f"Only {n_raters} rater(s) voted: the panel interval cannot speak for raters in "
            "general; recruit more raters."
        )
    if top_share > TOP_RATER_SHARE_WARNING:
        warnings.append(
            f"One rater cast {top_share:.0%} of the votes: the result mostly reflects that "
            "rater's taste; spread the items over more raters."
        )
    panel_ci = (float(low[0]), float(high[0]))
    return panel_ci, n_raters, top_share, warnings


def win_rate_inference(
    counts: np.ndarray | Sequence[Sequence[int]] | None = None,
    *,
    item_index: Sequence[int] | np.ndarray | None = None,
    rater_index: Sequence[int] | np.ndarray | None = None,
    codes: Sequence[int] | np.ndarray | None = None,
    confidence: float = 0.95,
) -> WinRateInference:
    """Win rate with item-clustered CIs, the sign-flip p-value and, given each vote's rater,
    the panel interval (see the module docstring).

    Args:
        counts: ``(n_items, 4)`` per-item counts ``[base, tuned, tie, both_bad]``; built from
            ``item_index`` and ``codes`` when omitted.
        item_index, rater_index, codes: one entry per vote (item and rater as integer indices
            from 0, codes as in :mod:`scoring.stats.votes`); needed for the panel interval.
        confidence: two-sided level.

    Raises:
        ValueError: bad counts or codes, mismatched lengths, counts that disagree with the votes,
            a rater voting twice on one item, or a confidence outside (0, 1).
    """
    confidence = check_confidence(confidence)
    has_votes = item_index is not None and codes is not None
    if counts is None:
        if not has_votes:
            raise ValueError("give counts, or item_index and codes")
        counts = counts_from_votes(item_index, codes)
    counts = check_counts(counts)
    counts = counts[counts.sum(axis=1) > 0] if rater_index is None else counts
    votes = counts.sum(axis=1)
    used = votes > 0
    tuned, base = counts[:, TUNED], counts[:, BASE]
    tie_counts = counts[:, TIE] + counts[:, BOTH_BAD]
    n_votes = int(votes.sum())
    n_items = int(used.sum())
    nan = float("nan")
    warnings: list[str] = []
    items_text = (
        f"Items drawn like these {n_items} items, judged by this panel of raters "
        "(the raters who voted, in the same proportions)."
    )
    panel_text = "Items drawn like these, judged by a new panel of raters drawn like these raters."
    if n_votes == 0:
        return WinRateInference(
            win_rate=nan,
            win_rate_no_ties=nan,
            n_votes=0,
            n_items=0,
            tuned_wins=0,
            base_wins=0,
            ties=0,
            ci=(nan, nan),
            ci_method="no votes",
            ci_no_ties=(nan, nan),
            p_value=1.0,
            p_value_exact=1.0,
            p_method=P_METHOD,
            se=nan,
            design_effect=nan,
            effective_n=nan,
            confidence=confidence,
            n_raters=None,
            top_rater_share=None,
            panel_ci=None,
            panel_method="no votes",
            warnings=("No votes yet.",),
            generalises_to_items=items_text,
            generalises_to_panel=panel_text,
        )
    scores = tuned + 0.5 * tie_counts
    main = clustered_intervals(scores[None], votes[None], tie_counts[None], confidence=confidence)
    level = 1.0 - confidence
    test = sign_flip_test(tuned - base, level=level)
    p_method = P_METHOD
    if test.informative_items:
        sizes = P_SIZES.format(level=level, mid=test.mid_p_size, exact=test.exact_size)
        p_method = f"{P_METHOD} ({sizes})"
    ci = (float(main.low[0]), float(main.high[0]))
    method = ITEM_METHOD
    if not main.estimable[0]:
        method += "; design effect not estimable, largest plausible value used"
        warnings.append(
            "Every vote is the same, so the design effect cannot be estimated; the interval "
            "assumes each item's votes are perfectly correlated (one unit per item)."
        )
    low, high, extended = extend_unless_rejected(main.low, main.high, test.mid_p_value, confidence)
    if extended[0]:
        ci = (float(low[0]), float(high[0]))
        method += "; extended to 1/2 because the exact sign-flip test does not reject 1/2"
        warnings.append(
            f"Only {test.informative_items} item(s) prefer one system; the normal approximation "
            "is unreliable, so the interval is extended to 1/2 where the exact test "
            f"(p = {test.mid_p_value:.3g}) cannot exclude it."
        )
    decisive = tuned + base
    if decisive.sum():
        no_ties = clustered_intervals(
            tuned[None].astype(np.float64),
            decisive[None],
            np.zeros((1, decisive.size)),
            confidence=confidence,
        )
        low, high, _ = extend_unless_rejected(
            no_ties.low, no_ties.high, test.mid_p_value, confidence
        )
        ci_no_ties = (float(low[0]), float(high[0]))
        rate_no_ties = float(tuned.sum() / decisive.sum())
    else:
        ci_no_ties, rate_no_ties = (nan, nan), nan
    if n_items < FEW_ITEMS:
        warnings.append(
            f"Only {n_items} item(s): every interval rests on very few independent units."
        )

    panel_ci: tuple[float, float] | None = None
    n_raters: int | None = None
    top_share: float | None = None
    panel_method = "not computed: needs each vote's rater (rater_index with item_index and codes)"
    if rater_index is not None:
        if not has_votes:
            raise ValueError("the panel interval needs item_index and codes with rater_index")
        panel_ci, n_raters, top_share, panel_warnings = _panel(
            counts,
            np.asarray(item_index),
            np.asarray(rater_index),
            np.asarray(codes),
            confidence,
        )
        panel_method = PANEL_METHOD
        warnings.extend(panel_warnings)
        if panel_ci[1] - panel_ci[0] < ci[1] - ci[0]:
            # Valid on average (the t quantile pays for it), but a reader should not take the
            # narrower interval as the more precise one.
            warnings.append(
                f"The panel interval is narrower than the item interval: the {n_raters} raters' "
                "totals happen to agree closely, and a variance estimated from few raters is "
                "itself uncertain; quote the wider interval."
            )
        items_text = (
            f"Items drawn like these {n_items} items, judged by this panel of {n_raters} "
            "raters (in the same proportions)."
        )
        panel_text = (
            f"Items drawn like these, judged by a new panel of raters drawn like these "
            f"{n_raters} raters."
        )
    return WinRateInference(
        win_rate=float(scores.sum() / n_votes),
        win_rate_no_ties=rate_no_ties,
        n_votes=n_votes,
        n_items=n_items,
        tuned_wins=int(tuned.sum()),
        base_wins=int(base.sum()),
        ties=int(tie_counts.sum()),
        ci=ci,
        ci_method=method,
        ci_no_ties=ci_no_ties,
        p_value=test.mid_p_value,
        p_value_exact=test.p_value,
        p_method=p_method,
        se=float(main.se[0]),
        design_effect=float(main.design_effect[0]),
        effective_n=n_votes / float(main.design_effect[0]),
        confidence=confidence,
        n_raters=n_raters,
        top_rater_share=top_share,
        panel_ci=panel_ci,
        panel_method=panel_method,
        warnings=tuple(warnings),
        generalises_to_items=items_text,
        generalises_to_panel=panel_text,
    )


def win_rate_gate(
    counts: np.ndarray | Sequence[Sequence[int]] | None = None,
    *,
    confidence: float = 0.95,
    method: GateMethod = "item",
    threshold: float = 0.5,
    item_index: Sequence[int] | np.ndarray | None = None,
    rater_index: Sequence[int] | np.ndarray | None = None,
    codes: Sequence[int] | np.ndarray | None = None,
) -> WinRateGate:
    """Deterministic gate on the win rate (ties as half): ``"pass"`` when the interval's lower
    bound exceeds ``threshold``, ``"fail"`` when its upper bound is below it, else
    ``"undecided"``. ``method="item"`` uses the item-clustered interval (this panel);
    ``method="panel"`` the two-way interval (raters like these; needs per-vote raters). Both are
    analytic: the same data give the same verdict on every run.

    Raises:
        ValueError: as :func:`win_rate_inference`; an unknown method; ``"panel"`` without
            per-vote raters; a threshold outside (0, 1).
    """
    if method not in ("item", "panel"):
        raise ValueError(f"method must be 'item' or 'panel', got {method!r}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if method == "panel" and rater_index is None:
        raise ValueError("method='panel' needs item_index, rater_index and codes")
    result = win_rate_inference(
        counts,
        item_index=item_index,
        rater_index=rater_index if method == "panel" else None,
        codes=codes,
        confidence=confidence,
    )
    return gate_from_inference(result, method=method, threshold=threshold)


def gate_from_inference(
    result: WinRateInference, *, method: GateMethod = "item", threshold: float = 0.5
) -> WinRateGate:
    """The gate's verdict from an inference already computed (see :func:`win_rate_gate`).

    A verdict also needs the exact sign-flip test to reject 1/2 (``p_value_exact`` below
    ``1 - confidence``): the interval's guard uses the mid-p, whose size is nearest alpha
    but can pass a study whose exact p is above alpha (11 tuned wins, 3 base wins
    and 6 ties: mid-p 0.035, exact 0.057). A release gate must never pass on such a study, so it
    is "undecided".
    """
    if method not in ("item", "panel"):
        raise ValueError(f"method must be 'item' or 'panel', got {method!r}")
    confidence = result.confidence
    ci = result.panel_ci if method == "panel" and result.panel_ci else result.ci
    if method == "panel" and result.panel_ci is None:
        raise ValueError("method='panel' needs an inference computed with per-vote raters")
    described = f"{method}: {result.panel_method if method == 'panel' else result.ci_method}"
    low, high = ci
    if result.n_votes == 0 or math.isnan(low):
        return WinRateGate("undecided", low, high, threshold, confidence, described, "no votes yet")
    status: GateStatus = "pass" if low > threshold else "fail" if high < threshold else "undecided"
    exact_guard = status != "undecided" and result.p_value_exact >= 1.0 - confidence
    if exact_guard:
        status = "undecided"
    level = f"{confidence:.0%}"
    evidence = (
        f"tuned win rate {result.win_rate:.3f}, {level} {method}-level CI {_fmt(ci)} "
        f"over {result.n_items} items ({result.n_votes} votes); "
        + (
            f"the interval excludes {threshold} but the exact sign-flip test does not "
            f"(p = {result.p_value_exact:.3g}): too few informative items to decide"
            if exact_guard
            else f"lower bound above {threshold}"
            if status == "pass"
            else f"upper bound below {threshold}"
            if status == "fail"
            else f"the interval contains {threshold}"
        )
    )
    return WinRateGate(status, low, high, threshold, confidence, described, evidence)
