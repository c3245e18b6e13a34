"""Win rate of the tuned system over the base system, its confidence intervals and tests.

Conventions (documented choices):

* A vote's score is tuned = 1, base = 0, tie = 0.5, and **both bad counts as a tie** (0.5): it
  states no preference between the systems. This is the MT-Bench / Chatbot Arena convention
  (Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", where "tie
  (bothbad)" is a tie) and AlpacaEval's (Li et al. 2023), which count ties as half a win.
* ``ties="half"``: win rate = mean score over all votes. ``ties="exclude"``: win rate =
  tuned wins / (tuned wins + base wins), the decisive-vote share.
* ``unit="vote"`` counts every vote; ``unit="item"`` first takes the majority vote per item
  (plurality; a split between systems is a tie) and counts items.

Intervals:

* Wilson score interval (Wilson 1927, "Probable inference, the law of succession, and statistical
  inference"). With ties excluded it is the usual binomial interval. With ties as half the score
  is no longer Bernoulli: its variance ``s^2`` is smaller than ``p (1 - p)``, and the plain
  interval over-covers. The Wilson interval is then applied with the effective sample size
  ``n_eff = n p (1 - p) / s^2``, the design-effect correction that Korn & Graubard (1998,
  "Confidence intervals for proportions with small expected number of positive counts estimated
  from survey data") apply to survey proportions; ``n_eff = n`` when there are no ties.
  ``bench/bench_ci_coverage.py`` checks the coverage.
* Percentile bootstrap (Efron & Tibshirani 1993). When ``item_ids`` are given with
  ``unit="vote"`` the bootstrap resamples items (a cluster bootstrap), because votes on the same
  item are correlated; the Wilson interval treats votes as independent.

Sign test: exact two-sided binomial test of tuned wins among decisive votes against 1/2
(``scipy.stats.binomtest``); ties carry no sign and are dropped (Dixon & Mood 1946).

Length-adjusted win rate (:func:`length_adjusted_win_rate`). What it is: a logistic regression,
for one pair of systems, of the preference (tuned wins = 1, base wins = 0, ties = 0.5, or a
judge's probability that tuned is better, all as fractional outcomes as AlpacaEval uses them) on
the normalised length difference ``x = tanh((len_tuned - len_base) / sd)``; the adjusted win rate
is the predicted win rate at zero length difference, ``sigmoid(intercept)``. What it is *not*:
AlpacaEval 2's length-controlled win rate (Dubois et al. 2024, "Length-Controlled AlpacaEval"),
whose GLM also has a per-instruction difficulty term fitted across many models, and a
regularised model-identity term; with one pair of systems neither is identified, so the numbers
are not comparable with AlpacaEval leaderboard values. Its CI is item-clustered: the delta method
on the logit scale with the cluster-robust (CR1, ``G / (G - 1)``) sandwich by item, Student ``t``
on ``G - 1`` degrees of freedom; the optional bootstrap resamples items. Swapping the systems
mirrors every rate (``w -> 1 - w``). ``length_controlled_win_rate`` is the former name, kept (with
its old result fields) for callers not yet moved.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import expit, logit
from scipy.stats import binomtest, norm
from scipy.stats import t as student_t

from scoring.stats._resampling import (
    bootstrap_statistic,
    check_confidence,
    check_rng,
    percentile_interval,
)
from scoring.stats.arrays import sorted_unique
from scoring.stats.votes import (
    BASE,
    BOTH_BAD,
    TIE,
    TUNED,
    category_counts,
    check_choices,
    index_items,
    majority_codes,
    preference_scores,
)

TieHandling = Literal["half", "exclude"]
Unit = Literal["vote", "item"]
LengthTransform = Literal["tanh", "std"]

# Vanishing ridge penalty on the logistic coefficients: negligible for any real data set, but it
# keeps the fit finite under complete separation (e.g. the tuned system won every vote).
_RIDGE = 1e-6

# Elements per batch of grouped bootstrap fits: small enough for the Newton temporaries to stay
# in cache (larger batches measured slower on 99,000 items).
_GROUPED_FIT_ELEMENTS = 200_000


@dataclass(frozen=True)
class OutcomeCounts:
    """Vote counts by outcome."""

    tuned_wins: int
    base_wins: int
    ties: int
    both_bad: int

    @property
    def total(self) -> int:
        """All votes."""
        return self.tuned_wins + self.base_wins + self.ties + self.both_bad

    @property
    def decisive(self) -> int:
        """Votes that prefer one system."""
        return self.tuned_wins + self.base_wins


@dataclass(frozen=True)
class WinRate:
    """Win rate of tuned over base with Wilson and bootstrap intervals.

    Attributes:
        win_rate: proportion in [0, 1] (``nan`` when no unit counts, e.g. only ties excluded).
        ties: ``"half"`` or ``"exclude"``.
        unit: ``"vote"`` or ``"item"`` (majority per item).
        n: units entering the rate (with ties excluded: decisive units only).
        tuned_wins, base_wins, n_ties: units by outcome; ``n_ties`` includes both-bad.
        wilson_low, wilson_high: Wilson interval (effective-n corrected when ties count half).
        bootstrap_low, bootstrap_high: percentile bootstrap interval (``nan`` without resamples).
        sign_test_p_value: exact two-sided sign test on decisive units (1.0 when there are none).
        confidence: two-sided level of both intervals.
        n_resamples: bootstrap resamples drawn.
        n_clusters: independent units resampled by the bootstrap (items for a cluster bootstrap).
    """

    win_rate: float
    ties: str
    unit: str
    n: int
    tuned_wins: int
    base_wins: int
    n_ties: int
    wilson_low: float
    wilson_high: float
    bootstrap_low: float
    bootstrap_high: float
    sign_test_p_value: float
    confidence: float
    n_resamples: int
    n_clusters: int


@dataclass(frozen=True)
class LengthControlledWinRate:
    """Result of the former ``length_controlled_win_rate`` (see :class:`LengthAdjustedWinRate`).

    Attributes:
        win_rate: raw win rate of the same votes (same tie handling).
        lc_win_rate: predicted win rate at zero length difference, ``sigmoid(intercept)``.
        intercept, slope: logistic coefficients; ``slope`` is per unit of transformed difference.
        delta_low, delta_high: delta-method interval (logit scale, sandwich variance).
        bootstrap_low, bootstrap_high: percentile bootstrap interval (``nan`` without resamples).
        n: votes in the fit.
        transform: ``"tanh"`` (AlpacaEval 2) or ``"std"`` (plain standardisation).
        length_scale: standard deviation of the length difference used to normalise it
            (length units, e.g. tokens or characters, as given).
        confidence: two-sided level of both intervals.
        n_resamples: bootstrap resamples drawn.
    """

    win_rate: float
    lc_win_rate: float
    intercept: float
    slope: float
    delta_low: float
    delta_high: float
    bootstrap_low: float
    bootstrap_high: float
    n: int
    transform: str
    length_scale: float
    confidence: float
    n_resamples: int


@dataclass(frozen=True)
class LengthAdjustedWinRate:
    """Win rate adjusted for the length difference by a single-pair logistic fit (see the module
    docstring for what it is and is not).

    Attributes:
        win_rate: raw win rate of the same votes (mean outcome).
        adjusted_win_rate: predicted win rate at zero length difference, ``sigmoid(intercept)``.
        intercept, slope: logistic coefficients; ``slope`` is per unit of transformed difference.
        ci: item-clustered delta-method interval (logit scale, CR1 sandwich by item, ``t`` on
            ``n_items - 1`` df).
        ci_method: how ``ci`` was computed.
        bootstrap_ci: item-bootstrap percentile interval (``(nan, nan)`` without resamples).
        n: votes in the fit.
        n_items: clusters (items; every vote is its own item when ``item_ids`` is omitted).
        transform: ``"tanh"`` (as AlpacaEval 2) or ``"std"`` (plain standardisation).
        length_scale: standard deviation of the length difference used to normalise it.
        confidence: two-sided level of both intervals.
        n_resamples: bootstrap resamples drawn.
        outcome: ``"codes"`` (votes; ties as half or excluded) or ``"probabilities"``.
    """

    win_rate: float
    adjusted_win_rate: float
    intercept: float
    slope: float
    ci: tuple[float, float]
    ci_method: str
    bootstrap_ci: tuple[float, float]
    n: int
    n_items: int
    transform: str
    length_scale: float
    confidence: float
    n_resamples: int
    outcome: str


def count_outcomes(choices: Iterable[int] | np.ndarray) -> OutcomeCounts:
    """Count votes by outcome.

    Raises:
        ValueError: a choice is not a preference code.
    """
    counts = np.bincount(check_choices(choices), minlength=4)
    return OutcomeCounts(
        tuned_wins=int(counts[TUNED]),
        base_wins=int(counts[BASE]),
        ties=int(counts[TIE]),
        both_bad=int(counts[BOTH_BAD]),
    )


def wilson_interval(successes: float, n: float, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n``.

    ``successes`` and ``n`` may be fractional (effective counts). Returns ``(nan, nan)`` for
    ``n == 0``.

    Raises:
        ValueError: negative counts, ``successes > n`` or a confidence outside (0, 1).
    """
    confidence = check_confidence(confidence)
    if n < 0 or successes < 0 or successes > n * (1 + 1e-12):
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return (float("nan"), float("nan"))
    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = min(successes / n, 1.0)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def sign_test(tuned_wins: int, base_wins: int) -> float:
    """Exact two-sided sign test p-value of ``tuned_wins`` among decisive votes vs 1/2.

    Returns 1.0 when there are no decisive votes (no evidence either way).

    Raises:
        ValueError: negative counts.
    """
    if tuned_wins < 0 or base_wins < 0:
        raise ValueError("win counts must be non-negative")
    n = int(tuned_wins) + int(base_wins)
    if n == 0:
        return 1.0
    return float(binomtest(int(tuned_wins), n, 0.5, alternative="two-sided").pvalue)


def _units(
    choices: Iterable[int] | np.ndarray,
    item_ids: Sequence[Hashable] | None,
    unit: str,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes of the counted units and, for a cluster bootstrap, each unit's cluster index."""
    codes = check_choices(choices)
    if codes.size == 0:
        raise ValueError("no votes")
    if item_ids is not None and len(item_ids) != codes.size:
        raise ValueError(f"got {len(item_ids)} item ids but {codes.size} choices")
    if unit == "item":
        if item_ids is None:
            raise ValueError("unit='item' needs item_ids")
        _, counts = category_counts(item_ids, codes)
        return majority_codes(counts, on_split="tie").astype(np.int64), None
    if unit != "vote":
        raise ValueError(f"unit must be 'vote' or 'item', got {unit!r}")
    clusters = None if item_ids is None else index_items(item_ids)[1]
    return codes, clusters


def _score_features(
    codes: np.ndarray, clusters: np.ndarray | None, ties: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit scores and the per-cluster ``[score sum, count]`` features of the bootstrap."""
    if ties not in ("half", "exclude"):
        raise ValueError(f"ties must be 'half' or 'exclude', got {ties!r}")
    scores = preference_scores(codes)
    counted = np.ones(codes.size) if ties == "half" else (scores != 0.5).astype(np.float64)
    scores = scores * counted
    if clusters is None:
        return scores[counted > 0], np.column_stack([scores, counted])
    n_clusters = int(clusters.max()) + 1
    features = np.column_stack(
        [
            np.bincount(clusters, weights=scores, minlength=n_clusters),
            np.bincount(clusters, weights=counted, minlength=n_clusters),
        ]
    )
    return scores[counted > 0], features


def _ratio_of_sums(sums: np.ndarray) -> np.ndarray:
    out = np.full(sums.shape[0], np.nan)
    np.divide(sums[:, 0], sums[:, 1], out=out, where=sums[:, 1] > 0)
    return out


def win_rate(
    choices: Iterable[int] | np.ndarray,
    *,
    item_ids: Sequence[Hashable] | None = None,
    unit: Unit = "vote",
    ties: TieHandling = "half",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    rng: np.random.Generator | None = None,
) -> WinRate:
    """Win rate of tuned over base with Wilson and bootstrap CIs and a sign test.

    The Wilson interval and the sign test count votes as independent; with several votes per
    item use :func:`scoring.stats.winrate_inference.win_rate_inference` (item-clustered).

    Args:
        choices: preference code per vote (0 base, 1 tuned, 2 tie, 3 both bad = tie).
        item_ids: item of each vote; needed for ``unit="item"``, and with ``unit="vote"`` it
            turns the bootstrap into a cluster bootstrap over items.
        unit: ``"vote"`` (every vote) or ``"item"`` (majority per item; split = tie).
        ties: ``"half"`` (ties score 0.5) or ``"exclude"`` (decisive votes only).
        confidence: two-sided level.
        n_resamples: bootstrap resamples; 0 skips the bootstrap.
        rng: generator for the bootstrap; required when ``n_resamples > 0``.

    Returns:
        :class:`WinRate`.

    Raises:
        ValueError: no votes, a bad code, mismatched lengths, unknown option, or a bootstrap
            without ``rng``.
    """
    rng = check_rng(rng, n_resamples)
    confidence = check_confidence(confidence)
    codes, clusters = _units(choices, item_ids, unit)
    counted_scores, features = _score_features(codes, clusters, ties)
    outcome = count_outcomes(codes)
    n = int(counted_scores.size)
    nan = float("nan")
    rate, wilson = nan, (nan, nan)
    if n:
        rate = float(counted_scores.mean())
        variance = float(((counted_scores - rate) ** 2).mean())
        bernoulli = rate * (1.0 - rate)
        # Effective n (design effect) for the tie-as-half score; equals n without ties.
        n_eff = n * bernoulli / variance if variance > 0 and bernoulli > 0 else float(n)
        wilson = wilson_interval(rate * n_eff, n_eff, confidence=confidence)
    boot = (nan, nan)
    if rng is not None and n:
        replicates = bootstrap_statistic(features, _ratio_of_sums, n_resamples, rng)
        boot = percentile_interval(replicates, confidence)
    return WinRate(
        win_rate=rate,
        ties=ties,
        unit=unit,
        n=n,
        tuned_wins=outcome.tuned_wins,
        base_wins=outcome.base_wins,
        n_ties=outcome.ties + outcome.both_bad,
        wilson_low=wilson[0],
        wilson_high=wilson[1],
        bootstrap_low=boot[0],
        bootstrap_high=boot[1],
        sign_test_p_value=sign_test(outcome.tuned_wins, outcome.base_wins),
        confidence=confidence,
        n_resamples=n_resamples if rng is not None else 0,
        n_clusters=int(features.shape[0]),
    )


# --------------------------------------------------------------------------------------------
# Length-adjusted win rate (single-pair logistic fit; formerly "length-controlled")


def _fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    *,
    start: tuple[float, float] | None = None,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted logistic regression ``logit p = b0 + b1 x`` for each row of ``weights``.

    Newton-Raphson on the (quasi-)likelihood, vectorised over rows (bootstrap resamples); ``y`` may
    be fractional. ``start`` is the initial ``(b0, b1)`` (default: the weighted mean's logit and
    0). Returns ``(b0, b1)`` arrays of length ``weights.shape[0]``.
    """
    if start is None:
        total = weights.sum(axis=1)
        b0 = logit(np.clip((weights @ y) / total, 1e-6, 1 - 1e-6))
        b1 = np.zeros_like(b0)
    else:
        # Bootstrap fits start from the full-sample estimate: a few Newton steps suffice.
        b0 = np.full(weights.shape[0], start[0])
        b1 = np.full(weights.shape[0], start[1])
    x2 = x * x
    for _ in range(max_iter):
        p = expit(b0[:, None] + b1[:, None] * x[None, :])
        resid = weights * (y[None, :] - p)
        g0 = resid.sum(axis=1) - _RIDGE * b0
        g1 = resid @ x - _RIDGE * b1
        v = weights * p * (1.0 - p)
        h00 = v.sum(axis=1) + _RIDGE
        h01 = v @ x
        h11 = v @ x2 + _RIDGE
        det = h00 * h11 - h01 * h01
        d0 = (h11 * g0 - h01 * g1) / det
        d1 = (h00 * g1 - h01 * g0) / det
        # Cap the step: under (near) separation Newton steps grow; capping keeps them stable.
        d0, d1 = np.clip(d0, -5.0, 5.0), np.clip(d1, -5.0, 5.0)
        b0, b1 = b0 + d0, b1 + d1
        if max(np.abs(d0).max(), np.abs(d1).max()) < 1e-10:
            break
    return b0, b1


def _fit_logistic_counts(
    x: np.ndarray,
    successes: np.ndarray,
    trials: np.ndarray,
    *,
    start: tuple[float, float] | None = None,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_fit_logistic` on grouped rows: ``successes`` of ``trials`` at covariate ``x``.

    ``successes`` and ``trials`` have shape ``(fits, k)`` (already multiplied by any bootstrap
    weights); row ``j`` of ``x`` stands for ``trials[:, j]`` votes whose outcomes sum to
    ``successes[:, j]``. The (quasi-)log-likelihood ``sum s log p + (n - s) log(1 - p)`` equals the
    per-vote one when ``x`` is constant within a group, so the fit is the same.
    """
    if start is None:
        b0 = logit(np.clip(successes.sum(axis=1) / trials.sum(axis=1), 1e-6, 1 - 1e-6))
        b1 = np.zeros_like(b0)
    else:
        b0 = np.full(successes.shape[0], start[0])
        b1 = np.full(successes.shape[0], start[1])
    x2 = x * x
    for _ in range(max_iter):
        p = np.multiply.outer(b1, x)
        p += b0[:, None]
        expit(p, out=p)
        resid = np.multiply(trials, p)
        np.subtract(successes, resid, out=resid)
        g0 = resid.sum(axis=1) - _RIDGE * b0
        g1 = resid @ x - _RIDGE * b1
        v = np.multiply(trials, p, out=resid)  # resid is no longer needed
        np.subtract(1.0, p, out=p)
        v *= p
        h00 = v.sum(axis=1) + _RIDGE
        h01 = v @ x
        h11 = v @ x2 + _RIDGE
        det = h00 * h11 - h01 * h01
        d0 = (h11 * g0 - h01 * g1) / det
        d1 = (h00 * g1 - h01 * g0) / det
        d0, d1 = np.clip(d0, -5.0, 5.0), np.clip(d1, -5.0, 5.0)
        b0, b1 = b0 + d0, b1 + d1
        if max(np.abs(d0).max(), np.abs(d1).max()) < 1e-10:
            break
    return b0, b1


def _per_item_rows(
    x: np.ndarray, y: np.ndarray, clusters: np.ndarray, n_units: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per-item ``(x_i, s_i, n_i)`` (covariate, outcome sum, votes), or ``None`` when ``x``
    varies within an item (then the fit cannot be aggregated). Items without votes get
    ``x_i = 0, s_i = n_i = 0`` and drop out of every sum."""
    x_item = np.zeros(n_units)
    x_item[clusters] = x
    if not np.array_equal(x_item[clusters], x):
        return None
    s = np.bincount(clusters, weights=y, minlength=n_units)
    n = np.bincount(clusters, minlength=n_units).astype(np.float64)
    return x_item, s, n


def _sandwich_se_intercept(
    x: np.ndarray,
    y: np.ndarray,
    b0: float,
    b1: float,
    clusters: np.ndarray | None,
    trials: np.ndarray | None = None,
) -> float:
    """Cluster-robust (CR1) standard error of the intercept of a logistic fit.

    Without ``clusters`` every row is its own cluster. With ``trials`` the rows are grouped (``y``
    the outcome sum of ``trials`` votes at ``x``, one row per cluster, ``clusters`` ``None``): the
    cluster-robust error of the per-vote fit. The meat carries the ``G / (G - 1)`` small-sample
    factor of Cameron & Miller (2015) for ``G`` clusters.
    """
    p = expit(b0 + b1 * x)
    if trials is None:
        v = p * (1.0 - p)
        resid = y - p
    else:
        v = trials * p * (1.0 - p)
        resid = y - trials * p
    design = np.column_stack([np.ones_like(x), x])
    bread = design.T @ (design * v[:, None]) + _RIDGE * np.eye(2)
    scores = design * resid[:, None]
    if clusters is not None:
        scores = np.column_stack(
            [np.bincount(clusters, weights=scores[:, j]) for j in range(scores.shape[1])]
        )
    n_clusters = _cluster_count(clusters, trials, x.size)
    meat = scores.T @ scores * (n_clusters / (n_clusters - 1) if n_clusters > 1 else 1.0)
    try:
        inv = np.linalg.inv(bread)
    except np.linalg.LinAlgError:
        return float("nan")
    cov = inv @ meat @ inv
    return float(np.sqrt(max(cov[0, 0], 0.0)))


def _cluster_count(clusters: np.ndarray | None, trials: np.ndarray | None, rows: int) -> int:
    if trials is not None:
        return int((trials > 0).sum())
    if clusters is not None:
        return int(sorted_unique(clusters).size)
    return rows


def _length_outcomes(
    choices: Iterable[int] | np.ndarray | None,
    probabilities: Sequence[float] | np.ndarray | None,
    ties: str,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Per-vote outcomes in [0, 1], the mask of votes kept, and the outcome kind."""
    if (choices is None) == (probabilities is None):
        raise ValueError("give either choices (vote codes) or probabilities, not both")
    if probabilities is not None:
        if ties != "half":
            raise ValueError("ties='exclude' applies to vote codes, not to probabilities")
        y = np.asarray(probabilities, dtype=np.float64)
        if (
            y.ndim != 1
            or not np.all(np.isfinite(y))
            or y.min(initial=0) < 0
            or y.max(initial=0) > 1
        ):
            raise ValueError("probabilities must be finite numbers in [0, 1], one per vote")
        return y, np.ones(y.size, dtype=bool), "probabilities"
    y = preference_scores(check_choices(choices))
    keep = np.ones(y.size, dtype=bool) if ties == "half" else y != 0.5
    return y, keep, "codes"


def length_adjusted_win_rate(
    choices: Iterable[int] | np.ndarray | None,
    length_tuned: Sequence[float] | np.ndarray,
    length_base: Sequence[float] | np.ndarray,
    *,
    probabilities: Sequence[float] | np.ndarray | None = None,
    item_ids: Sequence[Hashable] | None = None,
    transform: LengthTransform = "tanh",
    ties: TieHandling = "half",
    confidence: float = 0.95,
    n_resamples: int = 0,
    rng: np.random.Generator | None = None,
) -> LengthAdjustedWinRate:
    """Win rate of tuned over base at zero length difference, from one pair's logistic fit.

    Fits ``logit P(tuned wins) = b0 + b1 * x`` with ``x = tanh(d / sd(d))`` (``transform="tanh"``)
    or ``x = d / sd(d)`` (``"std"``), ``d = length_tuned - length_base`` per vote. Outcomes are
    vote codes (ties 0.5 with ``ties="half"``, dropped with ``"exclude"``) or, with
    ``probabilities``, a judge's probability that tuned is better (a fractional outcome). The
    transform's ``sd`` is fixed from the full sample (the bootstrap conditions on it). If all
    differences are equal the length term is dropped and the result equals the raw win rate.
    Not AlpacaEval 2's length-controlled win rate (see the module docstring).

    Args:
        choices: preference code per vote, or ``None`` with ``probabilities``.
        length_tuned, length_base: response lengths per vote (any unit, e.g. tokens).
        probabilities: per-vote probability in [0, 1] that tuned is better (instead of codes).
        item_ids: item of each vote: the clusters of the sandwich and of the bootstrap. Without
            it every vote is its own item, which is right only with one vote per item.
        transform: ``"tanh"`` or ``"std"``.
        ties: ``"half"`` or ``"exclude"`` (codes only).
        confidence: two-sided level.
        n_resamples: item-bootstrap resamples; 0 (the default) skips the bootstrap.
        rng: generator for the bootstrap; required when ``n_resamples > 0``.

    Raises:
        ValueError: mismatched lengths, non-finite lengths, bad probabilities, both or neither of
            ``choices`` and ``probabilities``, no usable vote, unknown option, or a bootstrap
            without ``rng``.
    """
    if transform not in ("tanh", "std"):
        raise ValueError(f"transform must be 'tanh' or 'std', got {transform!r}")
    if ties not in ("half", "exclude"):
        raise ValueError(f"ties must be 'half' or 'exclude', got {ties!r}")
    rng = check_rng(rng, n_resamples)
    confidence = check_confidence(confidence)
    y, keep, outcome = _length_outcomes(choices, probabilities, ties)
    lt = np.asarray(length_tuned, dtype=np.float64)
    lb = np.asarray(length_base, dtype=np.float64)
    if lt.shape != y.shape or lb.shape != y.shape:
        raise ValueError("choices, length_tuned and length_base must have the same length")
    if item_ids is not None and len(item_ids) != y.size:
        raise ValueError(f"got {len(item_ids)} item ids but {y.size} choices")
    if not (np.all(np.isfinite(lt)) and np.all(np.isfinite(lb))):
        raise ValueError("lengths must be finite numbers")
    if not keep.any():
        raise ValueError("no votes to fit (all were ties and ties='exclude')")
    # Copies only where votes are dropped (ties="exclude"): on a million votes each per-vote
    # temporary is 8 MB.
    every = bool(keep.all())
    diff = lt - lb
    clusters = None if item_ids is None else index_items(item_ids)[1]
    if not every:
        y, diff = y[keep], diff[keep]
        clusters = None if clusters is None else clusters[keep]
    scale = float(diff.std())
    if scale > 0:
        x = np.divide(diff, scale, out=diff)
        if transform == "tanh":
            np.tanh(x, out=x)
    else:
        x = np.zeros_like(diff)

    n_units = y.size if clusters is None else int(clusters.max()) + 1
    # With lengths per item (x constant within every item) the likelihood, the cluster sandwich
    # and the cluster bootstrap only need per-item sums: fit on one row per item.
    grouped = None if clusters is None else _per_item_rows(x, y, clusters, n_units)
    if grouped is None:
        (b0,), (b1,) = _fit_logistic(x, y, np.ones((1, y.size)))
        se = _sandwich_se_intercept(x, y, float(b0), float(b1), clusters)
        n_items = _cluster_count(clusters, None, y.size)
    else:
        x_item, s_item, n_item = grouped
        (b0,), (b1,) = _fit_logistic_counts(x_item, s_item[None, :], n_item[None, :])
        se = _sandwich_se_intercept(x_item, s_item, float(b0), float(b1), None, n_item)
        n_items = _cluster_count(None, n_item, n_item.size)
    q = float(student_t.ppf(0.5 + confidence / 2.0, max(n_items - 1, 1)))
    ci = (float(expit(b0 - q * se)), float(expit(b0 + q * se)))

    boot = (float("nan"), float("nan"))
    if rng is not None and grouped is not None:
        replicates = _grouped_bootstrap(
            grouped, n_resamples, rng, draw_chunk=max(1, 2_000_000 // y.size), b=(b0, b1)
        )
        boot = percentile_interval(replicates, confidence)
    elif rng is not None:
        replicates = np.empty(n_resamples)
        chunk = max(1, 2_000_000 // y.size)
        for start in range(0, n_resamples, chunk):
            rows = min(chunk, n_resamples - start)
            weights = _counts_per_row(rng.integers(0, n_units, size=(rows, n_units)), n_units)
            if clusters is not None:
                # Cluster bootstrap: a vote's weight is how often its item was drawn.
                weights = weights[:, clusters]
            r0, _ = _fit_logistic(x, y, weights, start=(float(b0), float(b1)))
            replicates[start : start + rows] = expit(r0)
        boot = percentile_interval(replicates, confidence)

    unit = "item" if item_ids is not None else "vote (no item ids: each vote its own cluster)"
    return LengthAdjustedWinRate(
        win_rate=float(y.mean()),
        adjusted_win_rate=float(expit(b0)),
        intercept=float(b0),
        slope=float(b1),
        ci=ci,
        ci_method=f"delta method, logit scale, CR1 sandwich by {unit}, t on {n_items - 1} df",
        bootstrap_ci=boot,
        n=int(y.size),
        n_items=n_items,
        transform=transform,
        length_scale=scale,
        confidence=confidence,
        n_resamples=n_resamples if rng is not None else 0,
        outcome=outcome,
    )


def length_controlled_win_rate(
    choices: Iterable[int] | np.ndarray,
    length_tuned: Sequence[float] | np.ndarray,
    length_base: Sequence[float] | np.ndarray,
    *,
    item_ids: Sequence[Hashable] | None = None,
    transform: LengthTransform = "tanh",
    ties: TieHandling = "half",
    confidence: float = 0.95,
    n_resamples: int = 1000,
    rng: np.random.Generator | None = None,
) -> LengthControlledWinRate:
    """Former name of :func:`length_adjusted_win_rate` with its old result fields (``lc_win_rate``,
    ``delta_low``/``delta_high``, ``bootstrap_low``/``bootstrap_high``), kept for callers not
    yet moved. The numbers are those of :func:`length_adjusted_win_rate` (item-clustered)."""
    result = length_adjusted_win_rate(
        choices,
        length_tuned,
        length_base,
        item_ids=item_ids,
        transform=transform,
        ties=ties,
        confidence=confidence,
        n_resamples=n_resamples,
        rng=rng,
    )
    return LengthControlledWinRate(
        win_rate=result.win_rate,
        lc_win_rate=result.adjusted_win_rate,
        intercept=result.intercept,
        slope=result.slope,
        delta_low=result.ci[0],
        delta_high=result.ci[1],
        bootstrap_low=result.bootstrap_ci[0],
        bootstrap_high=result.bootstrap_ci[1],
        n=result.n,
        transform=result.transform,
        length_scale=result.length_scale,
        confidence=result.confidence,
        n_resamples=result.n_resamples,
    )


def _counts_per_row(draws: np.ndarray, n_units: int) -> np.ndarray:
    """Turn ``(rows, k)`` drawn indices into ``(rows, n_units)`` float counts."""
    rows = draws.shape[0]
    offsets = np.arange(rows)[:, None] * n_units
    counts = np.bincount((draws + offsets).ravel(), minlength=rows * n_units)
    return counts.reshape(rows, n_units).astype(np.float64)


def _grouped_bootstrap(
    grouped: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_resamples: int,
    rng: np.random.Generator,
    *,
    draw_chunk: int,
    b: tuple[float, float],
) -> np.ndarray:
    """Cluster-bootstrap intercepts (as rates) on per-item rows ``(x_i, s_i, n_i)``.

    The item indices are drawn exactly as the per-vote bootstrap draws them (same ``rng`` calls,
    ``draw_chunk`` resamples at a time), so both give the same replicates; the counts then weight
    the item rows, and the fits run on batches of about 2M elements.
    """
    x_item, s_item, n_item = grouped
    n_units = x_item.size
    fit_rows = max(draw_chunk, _GROUPED_FIT_ELEMENTS // n_units)
    replicates = np.empty(n_resamples)
    pending: list[np.ndarray] = []
    done = 0
    for start in range(0, n_resamples, draw_chunk):
        rows = min(draw_chunk, n_resamples - start)
        pending.append(_counts_per_row(rng.integers(0, n_units, size=(rows, n_units)), n_units))
        if sum(w.shape[0] for w in pending) >= fit_rows or start + rows >= n_resamples:
            weights = np.concatenate(pending) if len(pending) > 1 else pending[0]
            pending = []
            r0, _ = _fit_logistic_counts(
                x_item, weights * s_item, weights * n_item, start=(float(b[0]), float(b[1]))
            )
            replicates[done : done + weights.shape[0]] = expit(r0)
            done += weights.shape[0]
    return replicates
