"""Inter-rater agreement with item-bootstrap confidence intervals.

Coefficients (all on a ``(raters, items)`` matrix with ``np.nan`` for a missing rating):

* Krippendorff's alpha, ``alpha = 1 - D_o / D_e`` over the coincidence matrix (Krippendorff 2011,
  "Computing Krippendorff's Alpha-Reliability"), levels nominal, ordinal, interval and ratio.
  Point estimates agree with the ``krippendorff`` package; the computation here is written as a
  sum of per-item contributions so that a bootstrap resample is a weighted sum (see below).
* Fleiss' kappa (Fleiss 1971, "Measuring nominal scale agreement among many raters"). With the
  same number of ratings on every item it is computed by ``statsmodels``; with varying numbers of
  ratings it uses Gwet's generalisation (Gwet 2014, "Handbook of Inter-Rater Reliability", 4th ed.,
  ch. 2), as implemented in the R package ``irrCAC``: observed agreement averaged over items with
  at least two ratings, category prevalence ``pi_k`` averaged over items with at least one rating.
* Cohen's kappa (Cohen 1960) for every pair of raters with enough common items, and their mean
  (Light 1971, "Measures of response agreement for qualitative data").
* Percent agreement: the share of agreeing rater pairs within an item, averaged over items with at
  least two ratings (the ``p_a`` of Fleiss and Gwet).
* Gwet's AC1 (nominal) and AC2 (weighted; ordinal, linear or quadratic weights) (Gwet 2008,
  "Computing inter-rater reliability and its variance in the presence of high agreement"; Gwet
  2014, ch. 4), following ``irrCAC``'s ``gwet.ac1.raw``.

Confidence intervals are percentile intervals of a nonparametric bootstrap over items (item
columns are resampled with replacement; raters are kept), the unit-level bootstrap recommended for
agreement coefficients by Gwet (2014, ch. 5) when raters are considered fixed.

Fast bootstrap: every coefficient is a smooth function of sums of per-item contributions. For
nominal alpha, item ``u`` with category counts ``n_uc`` and ``m_u`` pairable ratings contributes
``n_uc (n_uk - [c == k]) / (m_u - 1)`` to the coincidence matrix, so with a fixed distance matrix
``delta`` its observed-disagreement contribution is the scalar ``n_u' delta n_u / (m_u - 1)``
(``delta`` has a zero diagonal) and its contribution to the category marginals is ``n_u``. Both
are precomputed once; a resample with item weights ``w`` (how often each item was drawn) only
needs ``w @ contributions``, done for a chunk of resamples by one matrix product. Interval alpha
uses per-item moments instead of a distance matrix, and ordinal alpha (whose distances depend on
the marginals, hence on the resample) keeps the per-item off-diagonal coincidences, sparse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from scoring.stats._resampling import (
    BootstrapTarget,
    Features,
    bootstrap_statistic,
    check_confidence,
    check_rng,
    percentile_interval,
)
from scoring.stats.arrays import has_duplicates, sorted_unique

Level = Literal["nominal", "ordinal", "interval", "ratio"]
GwetWeights = Literal["identity", "ordinal", "linear", "quadratic"]

LEVELS: tuple[str, ...] = ("nominal", "ordinal", "interval", "ratio")
GWET_WEIGHTS: tuple[str, ...] = ("identity", "ordinal", "linear", "quadratic")

# Category-count matrices are dense (items x categories); beyond this many distinct values the
# data are not categorical and only interval alpha (computed from moments) is sensible.
_MAX_CATEGORIES = 1000


@dataclass(frozen=True)
class AgreementEstimate:
    """An agreement coefficient with its percentile bootstrap interval.

    Attributes:
        statistic: name of the coefficient, e.g. ``"krippendorff_alpha_nominal"``.
        estimate: the point estimate (unitless; 1 = perfect agreement, 0 = chance level).
        ci_low, ci_high: bootstrap percentile interval (``nan`` when ``n_resamples == 0``).
        confidence: two-sided level of the interval.
        n_items: items that carry information for the coefficient (e.g. with >= 2 ratings).
        n_raters: rows of the ratings matrix.
        n_resamples: bootstrap resamples drawn.
        n_undefined_resamples: resamples on which the coefficient is undefined (e.g. no
            variation left for alpha's expected disagreement); the interval is taken over the
            others, i.e. conditional on the coefficient existing, and this count says how often
            it did not.
    """

    statistic: str
    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    n_items: int
    n_raters: int
    n_resamples: int
    n_undefined_resamples: int = 0


@dataclass(frozen=True)
class PairKappa:
    """Cohen's kappa of one rater pair (rows ``rater_a`` < ``rater_b`` of the matrix)."""

    rater_a: int
    rater_b: int
    n_common: int
    kappa: float


@dataclass(frozen=True)
class PairwiseKappa:
    """Mean pairwise Cohen's kappa (``mean``) and the per-pair table (``pairs``).

    ``pairs`` lists every rater pair; pairs with fewer than ``min_common_items`` common items have
    ``kappa = nan`` and are left out of the mean.
    """

    mean: AgreementEstimate
    pairs: tuple[PairKappa, ...]


# --------------------------------------------------------------------------------------------
# Input handling


def _as_matrix(reliability_data: object) -> np.ndarray:
    """Validate a ``(raters, items)`` float matrix with ``nan`` for missing ratings."""
    try:
        data = np.asarray(reliability_data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "reliability_data must be a numeric (raters, items) matrix with nan for missing "
            "ratings; code text categories as numbers first"
        ) from exc
    if data.ndim != 2:
        raise ValueError(f"reliability_data must be 2-D (raters, items), got shape {data.shape}")
    if data.shape[0] < 2:
        raise ValueError(f"agreement needs at least two raters (rows), got {data.shape[0]}")
    if data.shape[1] < 1:
        raise ValueError("reliability_data has no items (columns)")
    if np.isinf(data).any():
        raise ValueError("reliability_data contains inf; use nan for a missing rating")
    return data


def _domain(data: np.ndarray, categories: Sequence[float] | np.ndarray | None) -> np.ndarray:
    """Sorted value domain: ``categories`` if given (checked to cover the data), else observed."""
    observed = sorted_unique(data[~np.isnan(data)])
    if observed.size == 0:
        raise ValueError("reliability_data contains no ratings (all nan)")
    if categories is None:
        return observed
    domain = np.unique(np.asarray(categories, dtype=np.float64))
    if domain.size == 0 or not np.all(np.isfinite(domain)):
        raise ValueError("categories must be a non-empty sequence of finite numbers")
    outside = np.setdiff1d(observed, domain)
    if outside.size:
        raise ValueError(f"reliability_data has values outside categories: {outside[:5].tolist()}")
    return domain


def _category_index(data: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Index of each rating in ``domain``; -1 where the rating is missing."""
    present = ~np.isnan(data)
    index = np.full(data.shape, -1, dtype=np.int64)
    index[present] = np.searchsorted(domain, data[present])
    return index


def _counts(index: np.ndarray, n_categories: int) -> np.ndarray:
    """``(items, categories)`` rating counts from the category index matrix."""
    if n_categories > _MAX_CATEGORIES:
        raise ValueError(
            f"{n_categories} distinct values: too many categories for a count matrix "
            f"(limit {_MAX_CATEGORIES}); use level='interval' for continuous ratings"
        )
    n_items = index.shape[1]
    present = index >= 0
    item_of = np.broadcast_to(np.arange(n_items), index.shape)[present]
    flat = item_of * n_categories + index[present]
    return np.bincount(flat, minlength=n_items * n_categories).reshape(n_items, n_categories)


@dataclass(frozen=True)
class AgreementPlan:
    """A coefficient before its bootstrap: the point estimate and the bootstrap target (each
    item's contributions, whose resampled sums give the replicates).

    The ``*_plan`` functions build one; :func:`scoring.stats._resampling.joint_bootstrap` can
    then draw one set of item resamples for several coefficients (and for other item-level
    statistics of the same items), and :meth:`result` turns the replicates into an
    :class:`AgreementEstimate`. Each coefficient function is its plan, bootstrapped alone.
    """

    statistic: str
    estimate: float
    target: BootstrapTarget
    n_items: int
    n_raters: int

    def result(
        self, replicates: np.ndarray | None, *, confidence: float = 0.95
    ) -> AgreementEstimate:
        """The estimate with the percentile interval of ``replicates`` (``None``: no bootstrap);
        undefined replicates are counted in ``n_undefined_resamples``."""
        confidence = check_confidence(confidence)
        low = high = float("nan")
        undefined = n_resamples = 0
        if replicates is not None and replicates.size:
            n_resamples = int(replicates.size)
            undefined = int(np.count_nonzero(~np.isfinite(replicates)))
            low, high = percentile_interval(replicates, confidence)
        return AgreementEstimate(
            statistic=self.statistic,
            estimate=self.estimate,
            ci_low=low,
            ci_high=high,
            confidence=confidence,
            n_items=self.n_items,
            n_raters=self.n_raters,
            n_resamples=n_resamples,
            n_undefined_resamples=undefined,
        )


def _plan(
    statistic: str,
    features: Features,
    finalize: Callable[[np.ndarray], np.ndarray],
    *,
    units: np.ndarray,
    n_raters: int,
    point: float | None = None,
    n_items: int | None = None,
) -> AgreementPlan:
    """Point estimate from the full column sums (or ``point``) and the bootstrap target;
    ``n_items`` defaults to the rows of ``features``."""
    totals = np.asarray(features.sum(axis=0), dtype=np.float64).reshape(1, -1)
    estimate = float(finalize(totals)[0]) if point is None else float(point)
    return AgreementPlan(
        statistic,
        estimate,
        BootstrapTarget(units, features, finalize),
        int(features.shape[0]) if n_items is None else n_items,
        n_raters,
    )


def _estimate(
    plan: AgreementPlan,
    *,
    n_resamples: int,
    confidence: float,
    rng: np.random.Generator | None,
) -> AgreementEstimate:
    """The plan's estimate with its own item bootstrap (``rng`` ``None``: no interval)."""
    replicates = None
    if rng is not None and n_resamples > 0:
        target = plan.target
        replicates = bootstrap_statistic(target.features, target.finalize, n_resamples, rng)
    return plan.result(replicates, confidence=confidence)


def _column_ids(item_ids: Sequence[int] | np.ndarray | None, n_items: int) -> np.ndarray:
    """The unit id of each matrix column: ``item_ids`` if given (distinct integers), else the
    column positions."""
    if item_ids is None:
        return np.arange(n_items)
    ids = np.asarray(item_ids)
    if ids.shape != (n_items,) or ids.dtype.kind not in "iu":
        raise ValueError(f"item_ids must hold one integer id per column ({n_items} columns)")
    if has_duplicates(ids):
        raise ValueError("item_ids must be distinct")
    return ids


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ``numerator / denominator`` with ``nan`` where the denominator is 0."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


# --------------------------------------------------------------------------------------------
# Krippendorff's alpha


def _distance_matrix(domain: np.ndarray, level: str) -> np.ndarray:
    """Fixed metric ``delta_ck`` (Krippendorff 2011, sec. C) for nominal and ratio data."""
    v1, v2 = domain[:, None], domain[None, :]
    if level == "nominal":
        return (v1 != v2).astype(np.float64)
    total = v1 + v2
    diff = np.broadcast_to(v1 - v2, total.shape)
    ratio = np.zeros(total.shape)
    np.divide(diff, total, out=ratio, where=total != 0)
    return ratio**2


def _pair_coincidences(counts: np.ndarray, m: np.ndarray) -> sp.csr_matrix:
    """Per-item off-diagonal coincidences ``n_uc n_uk / (m_u - 1)`` for ``c < k``, sparse.

    Column ``c * V + k`` holds pair ``(c, k)``. Only pairs present in an item are stored, so the
    size grows with the ratings, not with ``V**2`` per item.
    """
    n_items, n_cat = counts.shape
    rows, cols = np.nonzero(counts)  # row-major: columns ascend within a row
    vals = counts[rows, cols].astype(np.float64)
    nnz = rows.size
    later = np.searchsorted(rows, rows, side="right") - np.arange(nnz) - 1
    first = np.repeat(np.arange(nnz), later)
    starts = np.cumsum(later) - later
    second = first + 1 + (np.arange(first.size) - np.repeat(starts, later))
    data = vals[first] * vals[second] / (m[rows[first]] - 1.0)
    columns = cols[first] * n_cat + cols[second]
    return sp.csr_matrix((data, (rows[first], columns)), shape=(n_items, n_cat * n_cat))


def _ordinal_distances(marginals: np.ndarray) -> np.ndarray:
    """Ordinal metric for each row of marginals ``n_g``: ``(sum_{g=c..k} n_g - (n_c+n_k)/2)^2``."""
    cum = np.cumsum(marginals, axis=1)
    # sum_{g=c}^{k} n_g - (n_c + n_k) / 2 == C_k - C_c + (n_c - n_k) / 2 for c <= k; squared, it is
    # symmetric in (c, k), so the same expression serves c > k.
    inner = (
        cum[:, None, :] - cum[:, :, None] + (marginals[:, :, None] - marginals[:, None, :]) / 2.0
    )
    return inner**2


def _alpha_plan(
    data: np.ndarray, level: str, categories: Sequence[float] | np.ndarray | None
) -> tuple[Features, Callable[[np.ndarray], np.ndarray]]:
    """Per-item features and the function turning their (weighted) sums into alpha."""
    present = ~np.isnan(data)
    m_all = present.sum(axis=0)
    pairable = m_all >= 2
    if not pairable.any():
        raise ValueError("alpha needs at least one item rated by two or more raters")
    domain = _domain(data, categories)
    if domain.size < 2:
        raise ValueError(
            "alpha is undefined when all ratings have the same value (no variation to compare "
            "disagreement against)"
        )
    data = data[:, pairable]
    m = m_all[pairable].astype(np.float64)

    if level == "interval":
        # Interval distance (v_c - v_k)^2 decomposes into moments: an item contributes
        # sum_{i != j} (x_i - x_j)^2 / (m - 1) = 2 (m S2 - S1^2) / (m - 1), and the expected
        # disagreement needs only the pooled n, S1, S2. Centring first limits cancellation.
        centred = data - np.nanmean(data)
        s1 = np.nansum(centred, axis=0)
        s2 = np.nansum(centred**2, axis=0)
        observed = 2.0 * (m * s2 - s1**2) / (m - 1.0)
        features = np.column_stack([observed, m, s1, s2])

        def finalize(sums: np.ndarray) -> np.ndarray:
            n, t1, t2 = sums[:, 1], sums[:, 2], sums[:, 3]
            expected = 2.0 * (n * t2 - t1**2)
            return 1.0 - _safe_ratio((n - 1.0) * sums[:, 0], expected)

        return features, finalize

    counts = _counts(_category_index(data, domain), domain.size).astype(np.float64)
    n_cat = domain.size

    if level == "ordinal":
        # The ordinal metric depends on the marginals n_g, which change with every resample, so
        # the per-item coincidences themselves (off-diagonal, c < k) are kept.
        features = sp.hstack([sp.csr_matrix(counts), _pair_coincidences(counts, m)], format="csr")

        def finalize(sums: np.ndarray) -> np.ndarray:
            marg = sums[:, :n_cat]
            pairs = sums[:, n_cat:].reshape(-1, n_cat, n_cat)  # upper triangle only
            delta = _ordinal_distances(marg)
            observed = 2.0 * np.einsum("bck,bck->b", pairs, delta)
            expected = np.einsum("bc,bck,bk->b", marg, delta, marg)
            n = marg.sum(axis=1)
            return 1.0 - _safe_ratio((n - 1.0) * observed, expected)

        return features, finalize

    delta = _distance_matrix(domain, level)
    # alpha = 1 - (n - 1) * sum_ck o_ck delta_ck / sum_ck n_c n_k delta_ck with delta_cc = 0.
    observed = np.einsum("uc,ck,uk->u", counts, delta, counts) / (m - 1.0)
    features = np.column_stack([observed, counts])

    def finalize(sums: np.ndarray) -> np.ndarray:
        marg = sums[:, 1:]
        expected = np.einsum("bc,ck,bk->b", marg, delta, marg)
        n = marg.sum(axis=1)
        return 1.0 - _safe_ratio((n - 1.0) * sums[:, 0], expected)

    return features, finalize


def krippendorff_alpha(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    level: Level = "nominal",
    categories: Sequence[float] | np.ndarray | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
) -> AgreementEstimate:
    """Krippendorff's alpha with a bootstrap CI over items.

    Equal to ``krippendorff.alpha(reliability_data, level_of_measurement=level)`` (to rounding);
    the bootstrap resamples the items with at least two ratings (the others carry no pairable
    value and do not enter alpha).

    Args:
        reliability_data: ``(raters, items)`` numeric ratings, ``nan`` = missing.
        level: ``"nominal"``, ``"ordinal"``, ``"interval"`` or ``"ratio"``.
        categories: the value domain; only checked to cover the data (alpha itself depends on the
            observed values only).
        n_resamples: bootstrap resamples; 0 skips the CI.
        confidence: two-sided CI level.
        rng: generator for the bootstrap; required when ``n_resamples > 0``.

    Returns:
        :class:`AgreementEstimate` named ``krippendorff_alpha_<level>``.

    Raises:
        ValueError: malformed matrix, unknown level, no item with two ratings, a single observed
            value, or a bootstrap without ``rng``.
    """
    rng = check_rng(rng, n_resamples)
    confidence = check_confidence(confidence)
    plan = krippendorff_alpha_plan(reliability_data, level=level, categories=categories)
    return _estimate(plan, n_resamples=n_resamples, confidence=confidence, rng=rng)


def krippendorff_alpha_plan(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    level: Level = "nominal",
    categories: Sequence[float] | np.ndarray | None = None,
    item_ids: Sequence[int] | np.ndarray | None = None,
) -> AgreementPlan:
    """:func:`krippendorff_alpha` before its bootstrap (see :class:`AgreementPlan`); its units
    are the items with two or more ratings, named by ``item_ids`` (one per column; default:
    column positions).

    Raises:
        ValueError: as :func:`krippendorff_alpha`, or bad ``item_ids``.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    data = _as_matrix(reliability_data)
    columns = _column_ids(item_ids, data.shape[1])
    features, finalize = _alpha_plan(data, level, categories)
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    return _plan(
        f"krippendorff_alpha_{level}",
        features,
        finalize,
        units=columns[pairable],
        n_raters=data.shape[0],
    )


# --------------------------------------------------------------------------------------------
# Fleiss' kappa, percent agreement, Gwet's AC1/AC2


def gwet_weights(domain: Sequence[float] | np.ndarray, weights: GwetWeights) -> np.ndarray:
    """Agreement weights ``w_kl`` of Gwet (2014, ch. 3), as in ``irrCAC``.

    ``identity``: 1 on the diagonal. ``ordinal``: ``1 - M_kl / max M`` with
    ``M_kl = C(|k - l| + 1, 2)`` on category ranks. ``linear``: ``1 - |x_k - x_l| / (max - min)``.
    ``quadratic``: ``1 - (x_k - x_l)^2 / (max - min)^2`` (the interval weights).

    Raises:
        ValueError: unknown weights or fewer than two categories for non-identity weights.
    """
    values = np.asarray(domain, dtype=np.float64)
    q = values.size
    if weights == "identity":
        return np.eye(q)
    if weights not in GWET_WEIGHTS:
        raise ValueError(f"weights must be one of {GWET_WEIGHTS}, got {weights!r}")
    if q < 2:
        raise ValueError("weighted agreement needs at least two categories")
    if weights == "ordinal":
        ranks = np.arange(q)
        d = np.abs(ranks[:, None] - ranks[None, :]) + 1
        m = d * (d - 1) / 2.0
        return 1.0 - m / m.max()
    span = values.max() - values.min()
    diff = np.abs(values[:, None] - values[None, :]) / span
    return 1.0 - (diff if weights == "linear" else diff**2)


def _gwet_features(counts: np.ndarray, weight_matrix: np.ndarray) -> np.ndarray:
    """Per-item ``[pairable, p_a contribution, pi_1..pi_q, 1]`` for items with >= 1 rating.

    ``p_a`` contribution: ``sum_k n_uk (n*_uk - 1) / (m_u (m_u - 1))`` with
    ``n*_uk = sum_l w_kl n_ul`` (the weighted share of agreeing ordered rater pairs).
    """
    m = counts.sum(axis=1).astype(np.float64)
    rated = m >= 1
    counts, m = counts[rated].astype(np.float64), m[rated]
    pairable = m >= 2
    weighted = counts @ weight_matrix.T
    agree = np.zeros_like(m)
    agree[pairable] = (counts[pairable] * (weighted[pairable] - 1.0)).sum(axis=1) / (
        m[pairable] * (m[pairable] - 1.0)
    )
    ones = np.ones_like(m)
    return np.column_stack([pairable.astype(np.float64), agree, counts / m[:, None], ones])


def _observed_and_prevalence(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``p_a`` (mean over pairable items) and ``pi_k`` (mean over rated items) from sums."""
    p_a = _safe_ratio(sums[:, 1], sums[:, 0])
    pi = sums[:, 2:-1] / sums[:, -1:]
    return p_a, pi


def _coded_counts(
    reliability_data: object,
    categories: Sequence[float] | np.ndarray | None,
    item_ids: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Domain, ``(items, categories)`` counts, raters and the id of each item (column)."""
    data = _as_matrix(reliability_data)
    columns = _column_ids(item_ids, data.shape[1])
    domain = _domain(data, categories)
    counts = _counts(_category_index(data, domain), domain.size)
    if not (counts.sum(axis=1) >= 2).any():
        raise ValueError("agreement needs at least one item rated by two or more raters")
    return domain, counts, data.shape[0], columns


def fleiss_kappa(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    categories: Sequence[float] | np.ndarray | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
) -> AgreementEstimate:
    """Fleiss' kappa ``(p_a - p_e) / (1 - p_e)`` with ``p_e = sum_k pi_k^2``, bootstrap CI.

    When every rated item has the same number ``n >= 2`` of ratings this is Fleiss (1971),
    computed by ``statsmodels.stats.inter_rater.fleiss_kappa``. Otherwise items have varying
    numbers of raters and Gwet's generalisation is used: ``p_a`` averages each item's share of
    agreeing rater pairs over items with >= 2 ratings, and ``pi_k`` averages each item's share of
    category ``k`` over items with >= 1 rating (irrCAC's ``fleiss.kappa.raw``). Both coincide when
    ``n`` is constant.

    Args:
        reliability_data: ``(raters, items)`` category codes, ``nan`` = missing.
        categories: the category codes (defaults to those observed).
        n_resamples, confidence, rng: bootstrap over rated items (``rng`` required if
            ``n_resamples > 0``).

    Raises:
        ValueError: malformed matrix, no item with two ratings, or a bootstrap without ``rng``.
    """
    rng = check_rng(rng, n_resamples)
    confidence = check_confidence(confidence)
    plan = fleiss_kappa_plan(reliability_data, categories=categories)
    return _estimate(plan, n_resamples=n_resamples, confidence=confidence, rng=rng)


def fleiss_kappa_plan(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    categories: Sequence[float] | np.ndarray | None = None,
    item_ids: Sequence[int] | np.ndarray | None = None,
) -> AgreementPlan:
    """:func:`fleiss_kappa` before its bootstrap (see :class:`AgreementPlan`); its units are
    the items with at least one rating, named by ``item_ids`` (default: column positions).

    Raises:
        ValueError: as :func:`fleiss_kappa`, or bad ``item_ids``.
    """
    _, counts, n_raters, columns = _coded_counts(reliability_data, categories, item_ids)
    features = _gwet_features(counts, np.eye(counts.shape[1]))

    def finalize(sums: np.ndarray) -> np.ndarray:
        p_a, pi = _observed_and_prevalence(sums)
        p_e = (pi**2).sum(axis=1)
        return _safe_ratio(p_a - p_e, 1.0 - p_e)

    point = None
    per_item = counts.sum(axis=1)
    per_item = per_item[per_item > 0]
    if per_item.min() == per_item.max() >= 2:
        # Equal-n case: the textbook estimator, from statsmodels (imported lazily: heavy import).
        from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

        table = counts[counts.sum(axis=1) > 0]
        if (table.sum(axis=0) > 0).sum() > 1:
            point = float(sm_fleiss_kappa(table, method="fleiss"))
    return _plan(
        "fleiss_kappa",
        features,
        finalize,
        units=columns[counts.sum(axis=1) >= 1],
        n_raters=n_raters,
        point=point,
    )


def percent_agreement(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
) -> AgreementEstimate:
    """Pairwise percent agreement: share of agreeing rater pairs per item, averaged over items.

    Only items with >= 2 ratings count. Returned as a proportion in [0, 1], not a percentage.

    Raises:
        ValueError: malformed matrix, no item with two ratings, or a bootstrap without ``rng``.
    """
    rng = check_rng(rng, n_resamples)
    confidence = check_confidence(confidence)
    plan = percent_agreement_plan(reliability_data)
    return _estimate(plan, n_resamples=n_resamples, confidence=confidence, rng=rng)


def percent_agreement_plan(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    item_ids: Sequence[int] | np.ndarray | None = None,
) -> AgreementPlan:
    """:func:`percent_agreement` before its bootstrap (see :class:`AgreementPlan`); its units
    are the items with two or more ratings, named by ``item_ids`` (default: column positions).

    Raises:
        ValueError: as :func:`percent_agreement`, or bad ``item_ids``.
    """
    _, counts, n_raters, columns = _coded_counts(reliability_data, None, item_ids)
    pairable = counts.sum(axis=1) >= 2
    counts = counts[pairable]
    features = _gwet_features(counts, np.eye(counts.shape[1]))[:, :2]

    def finalize(sums: np.ndarray) -> np.ndarray:
        return _safe_ratio(sums[:, 1], sums[:, 0])

    return _plan(
        "percent_agreement", features, finalize, units=columns[pairable], n_raters=n_raters
    )


def gwet_ac(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    weights: GwetWeights = "identity",
    categories: Sequence[float] | np.ndarray | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
) -> AgreementEstimate:
    """Gwet's AC1 (``weights="identity"``) or AC2 (weighted) with a bootstrap CI over items.

    ``AC = (p_a - p_e) / (1 - p_e)`` with ``p_e = T_w / (q (q - 1)) * sum_k pi_k (1 - pi_k)``,
    where ``q`` is the number of categories and ``T_w`` the sum of the weights (``q`` for AC1).
    ``p_a`` and ``pi_k`` are as in :func:`fleiss_kappa` (weighted for AC2), following irrCAC.

    ``q`` matters: pass the full code set as ``categories`` (e.g. ``[0, 1, 2, 3]`` for A/B
    preference votes) so that an unused category still counts.

    Raises:
        ValueError: malformed matrix, fewer than two categories, unknown weights, no item with two
            ratings, or a bootstrap without ``rng``.
    """
    rng = check_rng(rng, n_resamples)
    confidence = check_confidence(confidence)
    plan = gwet_ac_plan(reliability_data, weights=weights, categories=categories)
    return _estimate(plan, n_resamples=n_resamples, confidence=confidence, rng=rng)


def gwet_ac_plan(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    weights: GwetWeights = "identity",
    categories: Sequence[float] | np.ndarray | None = None,
    item_ids: Sequence[int] | np.ndarray | None = None,
) -> AgreementPlan:
    """:func:`gwet_ac` before its bootstrap (see :class:`AgreementPlan`); its units are the
    items with at least one rating, named by ``item_ids`` (default: column positions).

    Raises:
        ValueError: as :func:`gwet_ac`, or bad ``item_ids``.
    """
    if weights not in GWET_WEIGHTS:
        raise ValueError(f"weights must be one of {GWET_WEIGHTS}, got {weights!r}")
    domain, counts, n_raters, columns = _coded_counts(reliability_data, categories, item_ids)
    q = domain.size
    if q < 2:
        raise ValueError(
            "Gwet's AC needs at least two categories; pass categories= with the full code set"
        )
    weight_matrix = gwet_weights(domain, weights)
    features = _gwet_features(counts, weight_matrix)
    chance_scale = weight_matrix.sum() / (q * (q - 1.0))

    def finalize(sums: np.ndarray) -> np.ndarray:
        p_a, pi = _observed_and_prevalence(sums)
        p_e = chance_scale * (pi * (1.0 - pi)).sum(axis=1)
        return _safe_ratio(p_a - p_e, 1.0 - p_e)

    name = "gwet_ac1" if weights == "identity" else f"gwet_ac2_{weights}"
    return _plan(
        name, features, finalize, units=columns[counts.sum(axis=1) >= 1], n_raters=n_raters
    )


def gwet_ac1(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    categories: Sequence[float] | np.ndarray | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
) -> AgreementEstimate:
    """Gwet's AC1 for nominal data; see :func:`gwet_ac`."""
    return gwet_ac(
        reliability_data,
        weights="identity",
        categories=categories,
        n_resamples=n_resamples,
        confidence=confidence,
        rng=rng,
    )


def gwet_ac2(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    weights: GwetWeights = "ordinal",
    categories: Sequence[float] | np.ndarray | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
) -> AgreementEstimate:
    """Gwet's AC2 with ordinal (default), linear or quadratic weights; see :func:`gwet_ac`."""
    if weights == "identity":
        raise ValueError("AC2 needs ordinal, linear or quadratic weights; use gwet_ac1 for none")
    return gwet_ac(
        reliability_data,
        weights=weights,
        categories=categories,
        n_resamples=n_resamples,
        confidence=confidence,
        rng=rng,
    )


# --------------------------------------------------------------------------------------------
# Cohen's kappa


def cohen_kappa_table(table: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` of a square two-rater contingency table.

    Rows are rater A's categories, columns rater B's, in the same order. Returns ``nan`` when
    ``p_e == 1`` (both raters used one and the same category: kappa is undefined).

    Raises:
        ValueError: the table is not square, has negative entries, or sums to zero.
    """
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"contingency table must be square, got shape {t.shape}")
    if (t < 0).any() or t.sum() <= 0:
        raise ValueError("contingency table needs non-negative counts with a positive total")
    return float(_kappa_from_tables(t[None, None])[0, 0])


def _kappa_from_tables(tables: np.ndarray) -> np.ndarray:
    """Cohen's kappa of ``(..., V, V)`` contingency tables; ``nan`` where undefined."""
    n = tables.sum(axis=(-2, -1))
    p_o = _safe_ratio(np.trace(tables, axis1=-2, axis2=-1), n)
    rows = _safe_ratio(tables.sum(axis=-1), n[..., None])
    cols = _safe_ratio(tables.sum(axis=-2), n[..., None])
    p_e = (rows * cols).sum(axis=-1)
    return _safe_ratio(p_o - p_e, 1.0 - p_e)


def cohen_kappa_pairwise(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    categories: Sequence[float] | np.ndarray | None = None,
    min_common_items: int = 5,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
) -> PairwiseKappa:
    """Cohen's kappa for every rater pair and their mean (Light's kappa), bootstrap CI.

    Each pair is computed on the items both raters rated. Pairs with fewer than
    ``min_common_items`` common items (kappa too noisy to average) and pairs whose kappa is
    undefined are left out of the mean. The bootstrap resamples items with >= 2 ratings and
    recomputes every included pair on each resample.

    Raises:
        ValueError: malformed matrix, ``min_common_items < 1``, no pair with enough common items,
            or a bootstrap without ``rng``.
    """
    if isinstance(min_common_items, bool) or int(min_common_items) < 1:
        raise ValueError(f"min_common_items must be >= 1, got {min_common_items!r}")
    rng = check_rng(rng, n_resamples)
    confidence = check_confidence(confidence)
    data = _as_matrix(reliability_data)
    domain = _domain(data, categories)
    n_cat = domain.size
    if n_cat > _MAX_CATEGORIES:
        raise ValueError(f"{n_cat} distinct values: too many categories for Cohen's kappa")
    index = _category_index(data, domain)
    keep = (index >= 0).sum(axis=0) >= 2
    index = index[:, keep]
    n_raters, n_items = index.shape
    if n_items == 0:
        raise ValueError("Cohen's kappa needs at least one item rated by two or more raters")

    pairs = [(a, b) for a in range(n_raters) for b in range(a + 1, n_raters)]
    rows, cols, common = [], [], []
    cell = n_cat * n_cat
    tables = np.zeros((len(pairs), cell))
    for p, (a, b) in enumerate(pairs):
        both = np.flatnonzero((index[a] >= 0) & (index[b] >= 0))
        common.append(both.size)
        cells = index[a, both] * n_cat + index[b, both]
        tables[p] = np.bincount(cells, minlength=cell)
        if rng is not None:  # the per-item cells are only needed to resample items
            rows.append(both)
            cols.append(p * cell + cells)
    included = np.array(common) >= int(min_common_items)

    def pair_kappas(sums: np.ndarray) -> np.ndarray:
        return _kappa_from_tables(sums.reshape(sums.shape[0], len(pairs), n_cat, n_cat))

    full = pair_kappas(tables.reshape(1, -1))[0]
    if not np.isfinite(full[included]).any():
        raise ValueError(
            f"no rater pair has {min_common_items} or more common items with a defined kappa"
        )

    def finalize(sums: np.ndarray) -> np.ndarray:
        kappas = pair_kappas(sums)[:, included]
        finite = np.isfinite(kappas)
        total = np.where(finite, kappas, 0.0).sum(axis=1)
        return _safe_ratio(total, finite.sum(axis=1).astype(np.float64))

    if rng is not None:
        all_rows = np.concatenate(rows)
        features = sp.csr_matrix(
            (np.ones(all_rows.size), (all_rows, np.concatenate(cols))),
            shape=(n_items, len(pairs) * cell),
        )
    else:
        # Without a bootstrap only the totals are used: the per-pair tables, one row.
        features = sp.csr_matrix(tables.reshape(1, -1))
    plan = _plan(
        "cohen_kappa_mean_pairwise",
        features,
        finalize,
        units=np.arange(features.shape[0]),
        n_raters=n_raters,
        n_items=n_items,
    )
    mean = _estimate(plan, n_resamples=n_resamples, confidence=confidence, rng=rng)
    table = tuple(
        PairKappa(
            rater_a=a,
            rater_b=b,
            n_common=int(common[p]),
            kappa=float(full[p]) if included[p] else float("nan"),
        )
        for p, (a, b) in enumerate(pairs)
    )
    return PairwiseKappa(mean=mean, pairs=table)


# --------------------------------------------------------------------------------------------
# Summary


def agreement_summary(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    level: Level = "nominal",
    categories: Sequence[float] | np.ndarray | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
) -> dict[str, AgreementEstimate]:
    """All coefficients suited to ``level``, keyed by statistic name.

    Nominal: alpha, Fleiss' kappa, Gwet's AC1, mean pairwise Cohen's kappa, percent agreement.
    Ordinal / interval / ratio: alpha at that level and Gwet's AC2 (ordinal weights for ordinal
    data, quadratic weights otherwise), plus percent agreement. Coefficients that are undefined on
    the data (e.g. no rater pair with enough common items) are omitted. Each bootstrap uses its own
    stream spawned from ``rng``, so adding a coefficient does not change the others' intervals.

    Raises:
        ValueError: as the individual functions.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    rng = check_rng(rng, n_resamples)
    streams = iter(rng.spawn(5) if rng is not None else [None] * 5)
    common = {"n_resamples": n_resamples, "confidence": confidence}
    out: dict[str, AgreementEstimate] = {}
    alpha = krippendorff_alpha(
        reliability_data, level=level, categories=categories, rng=next(streams), **common
    )
    out[alpha.statistic] = alpha
    if level == "nominal":
        estimates = [
            lambda r: fleiss_kappa(reliability_data, categories=categories, rng=r, **common),
            lambda r: gwet_ac1(reliability_data, categories=categories, rng=r, **common),
            lambda r: (
                cohen_kappa_pairwise(reliability_data, categories=categories, rng=r, **common).mean
            ),
        ]
    else:
        weights: GwetWeights = "ordinal" if level == "ordinal" else "quadratic"
        estimates = [
            lambda r: gwet_ac2(
                reliability_data, weights=weights, categories=categories, rng=r, **common
            )
        ]
    estimates.append(lambda r: percent_agreement(reliability_data, rng=r, **common))
    for compute in estimates:
        stream = next(streams)
        try:
            result = compute(stream)
        except ValueError:
            continue
        out[result.statistic] = result
    return out
