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
  residuals: ``Z = sum(d_i) / sqrt(sum(d_i^2))``, ``d_i = s_i - m_i / 2 = (W_i - L_i) / 2``
  (tuned minus base votes of the item; ties carry no sign). It is invariant to how votes are
  spread over items and is the statistic Miller (2024, "Adding Error Bars to Evals", arXiv
  2411.00640) recommends for clustered evaluations.
* Its small-sample version, :func:`sign_flip_test`: the randomisation test that flips the sign of
  each item's ``d_i`` (Fisher 1935, "The Design of Experiments", section 21; Pitman 1937). ``Z`` is
  exactly the standardised statistic of this randomisation distribution, whose variance is
  ``sum(d_i^2)``; the distribution itself is computed exactly (a convolution of one scaled
  binomial per distinct ``|W_i - L_i|``), so the p-value is deterministic and needs no
  Monte-Carlo. With one vote per item it is the exact sign test. Exact under the sharp null that
  the systems are exchangeable on every item; asymptotically valid under the weak null ``p = 1/2``
  because the randomisation variance ``sum(d_i^2)`` estimates the true one. Which p: every
  deterministic test rejects ``|T| >= c`` for some ``c``, so its size is one of the
  randomisation distribution's tail probabilities. The exact p picks the largest of them not
  above alpha (size 1.7% to 5% for the sign test on 20 to 1,000 decisive votes); the mid-p
  (Lancaster 1961; Agresti & Gottard 2007) picks the one *nearest* alpha (it rejects at ``c``
  exactly when alpha lies above the midpoint of ``P(|T| >= c)`` and ``P(|T| > c)``), so it can
  sit above alpha by up to half a gap (6.5% on 50 decisive votes, 7.7% on 16). Both sizes,
  conditional on the observed item magnitudes, are computed exactly (``mid_p_size``,
  ``exact_size``). The report quotes the mid-p, chosen by arithmetic over one-vote-per-item
  designs (20 to 1,000 items, exact binomial sums): its unconditional size is within 5% +- 1 for
  97% of item counts without ties and for all of them with a tie share of 0.1 to 0.5 (range
  4.2% to 5.1%), against 78% to 89% for the exact p. A hybrid (the exact p wherever the mid-p
  test's conditional size exceeds 6%) caps the conditional size but pulls designs with ties
  below the band (3.5% with 30 items and 30% ties), so it is not used; the release gate
  additionally requires the exact p (size at most alpha).
* Design effect: ``V`` over the variance the same votes would have if independent
  (Kish 1965); ``effective_n = n_votes / design_effect`` independent votes.
* :func:`score_interval`: the confidence interval for ``p``, a score (Wilson-type) interval on the
  effective sample size (Korn & Graubard 1998, "Confidence intervals for proportions with small
  expected number of positive counts estimated from survey data", with their degrees-of-freedom
  adjustment: the normal quantile is replaced by Student's ``t`` on ``G - 1`` degrees of freedom).
  The interval is ``{p0 : (p - p0)^2 <= t^2 * deff * v(p0) / n_votes}`` with the variance of one
  vote under ``p0``, ``v(p0) = p0 (1 - p0) - tau(p0) / 4``, where ``tau(p0)`` is the observed tie
  share, capped at ``2 min(p0, 1 - p0)`` (a win rate near 0 or 1 leaves no room for ties). With no
  ties it is the Wilson (1927) interval on ``n_votes / deff`` effective votes. Unlike a Wald
  interval it never collapses to a point: when the data cannot estimate the design effect (every
  vote the same) the largest plausible one is used, ``sum(m_i^2) / n_votes`` (every item's votes
  perfectly correlated, i.e. one unit per item), and the design effect is never taken below 1.
* Panel level (:func:`two_way_variance`): the two-way cluster-robust variance of Cameron, Gelbach &
  Miller (2011, "Robust inference with multiway clustering"), ``V_items + V_raters - V_votes``,
  with a small-sample factor that keeps it unbiased when raters are few (see the function),
  fed to the same score interval with Satterthwaite (1946) degrees of freedom
  (:func:`satterthwaite_df`; the split is described in ``scoring.stats.winrate_inference``). It
  adds the between-rater variance, so the interval speaks for raters drawn like these rather than
  for this panel only.

Input everywhere is an ``(n_items, 4)`` array of per-item vote counts in the code order of
``scoring.stats.votes`` (``[base, tuned, tie, both_bad]``). The interval and variance kernels take
numpy arrays of per-study moments, so the calibration bench evaluates thousands of simulated
studies with the same code in one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.fft import next_fast_len
from scipy.special import gammaln, ndtr
from scipy.stats import t as student_t

from scoring.stats.votes import BASE, BOTH_BAD, TIE, TUNED

# Bisection steps for the interval bounds: 2^-60 of the unit interval, far below any rounding.
_BISECTION_STEPS = 60
# When direct convolution would take more than this many multiply-adds, the randomisation
# distribution is computed from its characteristic function by one inverse FFT (absolute error
# ~1e-15, irrelevant for p-values compared with 0.05 or 0.001).
_DIRECT_CONVOLUTION_COST = 500**2


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


@dataclass(frozen=True)
class SignFlipTest:
    """Exact randomisation (sign-flip) test of ``H0: win rate = 1/2`` on item residuals.

    Attributes:
        p_value: two-sided exact p-value ``P(|T| >= |t|)`` (1 when ``t`` is 0).
        mid_p_value: two-sided mid-p ``P(|T| > |t|) + P(|T| = |t|) / 2`` (1 when ``t`` is 0).
        statistic: ``sum(W_i - L_i)``, tuned minus base votes over all items.
        informative_items: items whose votes do not cancel (``W_i != L_i``).
        level: the significance level the sizes below refer to.
        mid_p_size: ``P(mid-p < level)`` under the randomisation distribution of these item
            magnitudes: the exact conditional type I error of the mid-p test (0 without
            informative items).
        exact_size: the same for the exact p (at most ``level``).
    """

    p_value: float
    mid_p_value: float
    statistic: int
    informative_items: int
    level: float = 0.05
    mid_p_size: float = 0.0
    exact_size: float = 0.0


@dataclass(frozen=True)
class Moments:
    """Sufficient sums of one or many studies (arrays broadcast over studies).

    ``score`` is ``sum(s_i)``; ``score_sq``, ``score_votes``, ``votes_sq`` are ``sum(s_i^2)``,
    ``sum(s_i m_i)``, ``sum(m_i^2)`` over clusters; ``vote_sq`` is ``sum(x^2)`` over votes;
    ``ties`` counts votes scored 1/2.
    """

    n_votes: np.ndarray
    n_clusters: np.ndarray
    score: np.ndarray
    score_sq: np.ndarray
    score_votes: np.ndarray
    votes_sq: np.ndarray
    vote_sq: np.ndarray
    ties: np.ndarray


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


def sign_flip_test(steps: np.ndarray | list, *, level: float = 0.05) -> SignFlipTest:
    """Exact sign-flip test of ``sum(steps) = 0`` for integer per-item ``steps = W_i - L_i``.

    The randomisation distribution of ``T = sum(e_i |steps_i|)`` with independent fair signs
    ``e_i`` is the convolution, over each distinct ``v = |steps_i|`` shared by ``c_v`` items, of
    ``v (2 B - c_v)`` with ``B ~ Binomial(c_v, 1/2)``; it is symmetric about 0. ``level`` is the
    significance level of the conditional sizes ``mid_p_size`` and ``exact_size``.

    Raises:
        ValueError: a step is not an integer, or ``level`` is not in (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    values = np.asarray(steps)
    integral = np.issubdtype(values.dtype, np.integer)
    if values.size and not integral and not np.array_equal(values, np.round(values)):
        raise ValueError("steps must be integers (tuned minus base votes per item)")
    values = np.abs(values.astype(np.int64))
    statistic = int(np.asarray(steps, dtype=np.float64).sum()) if values.size else 0
    magnitudes, groups = np.unique(values[values > 0], return_counts=True)
    informative = int(groups.sum())
    if informative == 0:
        return SignFlipTest(1.0, 1.0, 0, 0, level)
    pmf = _randomisation_pmf(magnitudes.tolist(), groups.tolist())
    total = (pmf.size - 1) // 2
    # Two-sided exact and mid p of every |t| = 0..total, from the upper tail P(T >= |t|).
    positive = pmf[total:]
    upper = np.cumsum(positive[::-1])[::-1]
    exact_p = np.minimum(1.0, 2.0 * upper)
    mid_p = np.minimum(1.0, 2.0 * (upper - positive / 2.0))
    exact_p[0] = mid_p[0] = 1.0  # t = 0 is no evidence either way
    # Conditional sizes: P(|T| = t) = 2 pmf(t) for t > 0 (symmetry).
    mid_size = float(2.0 * positive[mid_p < level].sum())
    exact_size = float(2.0 * positive[exact_p < level].sum())
    observed = abs(statistic)
    return SignFlipTest(
        float(exact_p[observed]),
        float(mid_p[observed]),
        statistic,
        informative,
        level,
        mid_size,
        exact_size,
    )


def _half_binomial_pmf(count: int) -> np.ndarray:
    """``P(B = b)``, ``b = 0..count``, for ``B ~ Binomial(count, 1/2)``."""
    b = np.arange(count + 1)
    log_pmf = gammaln(count + 1) - gammaln(b + 1) - gammaln(count - b + 1) - count * math.log(2)
    return np.exp(log_pmf)


def _randomisation_pmf(magnitudes: list[int], counts: list[int]) -> np.ndarray:
    """``P(T = t)`` for ``t = -total..total`` (index ``t + total``), ``T = sum_v v (2 B_v - c_v)``
    with independent ``B_v ~ Binomial(c_v, 1/2)`` (see :func:`sign_flip_test`)."""
    total = sum(v * c for v, c in zip(magnitudes, counts, strict=True))
    cost, width = 0, 1
    for v, c in zip(magnitudes, counts, strict=True):
        cost += width * (2 * v * c + 1)
        width += 2 * v * c
    if len(magnitudes) == 1 or cost <= _DIRECT_CONVOLUTION_COST:
        pmf = np.ones(1)
        for v, c in zip(magnitudes, counts, strict=True):
            group = np.zeros(2 * v * c + 1)
            group[:: 2 * v] = _half_binomial_pmf(c)
            pmf = np.convolve(pmf, group)
        return pmf
    # Characteristic function of T: prod_v cos(v w)^c_v. Its inverse DFT on at least
    # 2 total + 1 points gives the pmf without aliasing, at t mod n_fft.
    n_fft = next_fast_len(2 * total + 1, real=True)
    omega = 2.0 * math.pi * np.arange(n_fft // 2 + 1) / n_fft
    characteristic = np.ones_like(omega)
    for v, c in zip(magnitudes, counts, strict=True):
        characteristic *= np.cos(v * omega) ** c
    circular = np.fft.irfft(characteristic, n_fft)
    pmf = np.concatenate((circular[n_fft - total :], circular[: total + 1]))
    return np.clip(pmf, 0.0, None)


def moments_from_totals(scores: np.ndarray, votes: np.ndarray, ties: np.ndarray) -> Moments:
    """Moments of studies given per-cluster score sums and vote counts, shape ``(..., G)``
    (clusters with no votes contribute nothing), and per-cluster tie counts."""
    scores = np.asarray(scores, dtype=np.float64)
    votes = np.asarray(votes, dtype=np.float64)
    ties = np.asarray(ties, dtype=np.float64)
    tied = ties.sum(axis=-1)
    score = scores.sum(axis=-1)
    return Moments(
        n_votes=votes.sum(axis=-1),
        n_clusters=(votes > 0).sum(axis=-1).astype(np.float64),
        score=score,
        score_sq=(scores * scores).sum(axis=-1),
        score_votes=(scores * votes).sum(axis=-1),
        votes_sq=(votes * votes).sum(axis=-1),
        # x^2 is 1 for a tuned vote and 1/4 for a tie: sum(x^2) = tuned + ties / 4.
        vote_sq=score - tied / 2.0 + tied / 4.0,
        ties=tied,
    )


def cluster_variance(moments: Moments) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(estimate, V_clusters, vote variance)``: the ratio estimate, its CR1 sandwich variance
    and the variance of one vote (``n - 1`` denominator); ``nan`` where undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        n = moments.n_votes
        p = moments.score / n
        residual_ss = moments.score_sq - 2 * p * moments.score_votes + p * p * moments.votes_sq
        g = moments.n_clusters
        variance = g / (g - 1) * np.clip(residual_ss, 0.0, None) / (n * n)
        variance = np.where(g > 1, variance, np.nan)
        vote_var = np.clip(moments.vote_sq - n * p * p, 0.0, None) / (n - 1)
        vote_var = np.where(n > 1, vote_var, np.nan)
    return p, variance, vote_var


def two_way_variance(item: Moments, rater: Moments) -> np.ndarray:
    """Two-way (items and raters) cluster-robust variance of the win rate (Cameron, Gelbach &
    Miller 2011), ``V_items + V_raters - V_votes`` with each rater judging an item at most once
    (so an item-rater cell is one vote), with a small-sample factor that makes it unbiased when
    raters are few.

    CR1-correcting each term by ``G / (G - 1)``, ``R / (R - 1)``, ``N / (N - 1)`` (as CGM do)
    assumes each dimension's clusters are independent. Raters are not: they share items, so
    centring the rater totals at the estimate removes ``Var(p) / R`` of *total* variance (items
    included), not of the rater part only, and with 10 raters and a design effect of 4 the
    estimate falls short by a third of the vote variance (coverage 93% instead of 95% when raters
    do not differ). Each raw centred sum of squares ``S`` over ``C`` clusters has expectation
    ``U - N^2 Var(p) / C`` (``U`` its uncentred version) when clusters in each dimension have
    equal sizes, and ``Var(p) = (U_items + U_raters - U_votes) / N^2`` under additive item and
    rater effects, so
    ``Var(p) = (S_items + S_raters - S_votes) / N^2 / (1 - 1/G - 1/R + 1/N)``
    is unbiased; with every rater on every item (``N = G R``) the factor is
    ``G R / ((G - 1)(R - 1))``. Below two raters the rater term cannot be estimated and the
    uncorrected sum is used. Where the sum is not positive, ``V_items + V_raters`` (dropping the
    subtracted term, as Cameron, Gelbach & Miller suggest)."""
    _, v_items, vote_var = cluster_variance(item)
    _, v_raters, _ = cluster_variance(rater)
    n, g, r = item.n_votes, item.n_clusters, rater.n_clusters
    with np.errstate(invalid="ignore", divide="ignore"):
        v_votes = np.nan_to_num(vote_var / n, nan=0.0)  # CR1 with one vote a cluster
        v_raters = np.nan_to_num(v_raters, nan=0.0)
        # Raw centred sums over N^2: each CR1 term without its C / (C - 1).
        raw = v_items * (1 - 1 / g) + v_raters * (1 - 1 / r) - v_votes * (1 - 1 / n)
        factor = 1.0 - 1.0 / g - 1.0 / r + 1.0 / n
        corrected = np.where((r >= 2) & (factor > 0), raw / factor, v_items + v_raters - v_votes)
        return np.where(corrected > 0, corrected, v_items + v_raters)


def satterthwaite_df(components: tuple[np.ndarray, ...], dfs: tuple[np.ndarray, ...]) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of a sum of variance estimates (Satterthwaite
    1946): ``(sum V_j)^2 / sum(V_j^2 / df_j)``; components with ``df_j < 1`` count with 1."""
    total = sum(np.nan_to_num(c, nan=0.0) for c in components)
    spread = sum(
        np.nan_to_num(c, nan=0.0) ** 2 / np.maximum(d, 1.0)
        for c, d in zip(components, dfs, strict=True)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spread > 0, total * total / spread, np.maximum(dfs[0], 1.0))


def t_quantile(confidence: float, df: np.ndarray | float) -> np.ndarray:
    """Two-sided Student ``t`` quantile; degrees of freedom below 1 are taken as 1."""
    return student_t.ppf(0.5 + confidence / 2.0, np.maximum(df, 1.0))


def _vote_variance_under(p0: np.ndarray, tie_share: np.ndarray) -> np.ndarray:
    """``v(p0) = p0 (1 - p0) - tau / 4`` with ``tau = min(tie share, 2 min(p0, 1 - p0))``."""
    tau = np.minimum(tie_share, 2.0 * np.minimum(p0, 1.0 - p0))
    return np.clip(p0 * (1.0 - p0) - tau / 4.0, 0.0, None)


def score_interval(
    estimate: np.ndarray | float,
    tie_share: np.ndarray | float,
    design_effect: np.ndarray | float,
    n_votes: np.ndarray | float,
    df: np.ndarray | float,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Score (Wilson-type) interval ``{p0 : (p - p0)^2 <= t_df^2 deff v(p0) / n}`` (see the
    module docstring), vectorised over studies; bounds found by bisection on each side of ``p``.
    ``nan`` where ``n_votes`` is 0."""
    p = np.atleast_1d(np.asarray(estimate, dtype=np.float64))
    shape = p.shape
    tau = np.broadcast_to(np.asarray(tie_share, dtype=np.float64), shape)
    scale = t_quantile(confidence, np.broadcast_to(df, shape)) ** 2 * np.asarray(design_effect)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.broadcast_to(scale / np.asarray(n_votes, dtype=np.float64), shape)

    def accepted(p0: np.ndarray) -> np.ndarray:
        return (p - p0) ** 2 <= k * _vote_variance_under(p0, tau)

    bounds = []
    for outer in (np.zeros(shape), np.ones(shape)):
        # Invariant: ``inner`` is accepted (p itself always is), ``far`` may not be.
        inner, far = p.copy(), outer.copy()
        far_ok = accepted(far)
        for _ in range(_BISECTION_STEPS):
            middle = (inner + far) / 2.0
            ok = accepted(middle)
            inner = np.where(ok, middle, inner)
            far = np.where(ok, far, middle)
        bounds.append(np.where(far_ok, outer, inner))
    low, high = bounds
    missing = ~np.isfinite(p) | ~np.isfinite(k)
    low = np.where(missing, np.nan, low)
    high = np.where(missing, np.nan, high)
    return low, high


def effective_design_effect(
    variance: np.ndarray,
    vote_var: np.ndarray,
    n_votes: np.ndarray,
    fallback: np.ndarray,
    *,
    floor: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(deff used, estimable)``: ``variance / (vote_var / n)``, at least ``floor``; ``fallback``
    (the largest plausible design effect) where the data cannot estimate it (no spread at all).

    The item interval floors the design effect at 1 (Korn & Graubard 1998): clustering does not
    make votes more informative than independent ones. The panel interval passes ``floor=0``:
    its ``t`` quantile on few (rater) degrees of freedom already pays for the noise in the
    variance, and flooring as well would over-cover (measured: 98% instead of 95%)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = variance / (vote_var / n_votes)
    estimable = np.isfinite(raw) & (vote_var > 0) & (raw > 0)
    deff = np.where(estimable, np.fmax(raw, floor), np.fmax(fallback, 1.0))
    return deff, estimable
