"""Simulated A/B preference studies with correlated votes, for calibrating the item-clustered
win-rate statistics (``bench/bench_ci_coverage.py``, ``tests/.../test_stats_calibration.py``).

Vote model: a paired comparison with ties in the manner of Rao & Kupper (1967, "Ties in
paired-comparison experiments: a generalization of the Bradley-Terry model"), made logistic and
given random effects for items and raters:

    u = theta_item + b_rater + e,   e ~ Logistic(0, 1)
    vote = tuned if u > c, base if u < -c, tie otherwise.

* ``theta_item ~ Normal(mu, sd_item^2)``: the item's latent preference (a logit-normal item
  effect). ``sd_item`` sets the agreement: Krippendorff's nominal alpha on the vote codes is about
  0.3 / 0.6 / 0.85 for ``agreement`` "low" / "mid" / "high" (``ITEM_SD``; calibrated once on
  studies of 8,000 items x 3 raters, no rater bias, tie share 0.2; ``measured_alpha`` re-checks it).
* ``b_rater ~ Normal(0, rater_bias^2)``: a rater's lean towards one side (0, 0.5 or 1 on the logit
  scale in the bench grid).
* ``c``: the tie zone, set so that the population tie share (over items and raters) is
  ``tie_share`` when ``mu = 0``. Items near indifference get more ties, as in real data.
* ``mu``: solved so that the population win rate (ties as half, over items AND raters drawn at
  random) equals ``win_rate``; under the null (0.5) ``mu = 0`` and the model is symmetric in the two
  systems, so the population win rate is exactly 1/2.

Expectations over the normal effects use Gauss-Hermite quadrature (80 nodes): exact to ~1e-12
for these smooth integrands.

Two panel regimes, both needed for honest coverage targets:

* fixed panel (``panel_biases`` given): every study reuses the same raters; the item-level interval
  targets :func:`panel_win_rate`, the panel's win rate over the item population.
* random panel (``panel_biases`` omitted): every study draws ``n_raters`` new raters; the
  panel-level interval targets the population win rate ``win_rate``.

Each item is judged by ``raters_per_item`` distinct raters picked uniformly from the panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

BASE, TUNED, TIE = 0, 1, 2

# Item-effect sd per agreement level (see the module docstring for the calibration).
ITEM_SD = {"low": 1.95, "mid": 5.1, "high": 16.0}
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclass(frozen=True)
class VoteModel:
    """The solved parameters of one simulation cell."""

    item_sd: float
    rater_bias: float
    tie_zone: float
    item_mean: float


def _outcome_probabilities(eta: np.ndarray, tie_zone: float) -> tuple[np.ndarray, np.ndarray]:
    """P(tuned) and P(tie) for latent location(s) ``eta``."""
    tuned = expit(eta - tie_zone)
    base = expit(-eta - tie_zone)
    return tuned, 1.0 - tuned - base


def _expect(function, mean: float, sd: float) -> float:
    """E f(X) for X ~ Normal(mean, sd^2) by Gauss-Hermite quadrature."""
    return float(_WEIGHTS @ function(mean + sd * _NODES))


def _population_rate(item_mean: float, sd: float, tie_zone: float) -> float:
    def score(eta: np.ndarray) -> np.ndarray:
        tuned, tie = _outcome_probabilities(eta, tie_zone)
        return tuned + 0.5 * tie

    return _expect(score, item_mean, sd)


@lru_cache(maxsize=256)
def vote_model(agreement: str, rater_bias: float, tie_share: float, win_rate: float) -> VoteModel:
    """Solve the tie zone and the item mean of one cell (see the module docstring)."""
    if agreement not in ITEM_SD:
        raise ValueError(f"agreement must be one of {sorted(ITEM_SD)}, got {agreement!r}")
    item_sd = ITEM_SD[agreement]
    sd = float(np.hypot(item_sd, rater_bias))
    tie_zone = 0.0
    if tie_share > 0:
        if not tie_share < 1:
            raise ValueError("tie_share must be in [0, 1)")

        def tie_gap(zone: float) -> float:
            return _expect(lambda eta: _outcome_probabilities(eta, zone)[1], 0.0, sd) - tie_share

        tie_zone = brentq(tie_gap, 0.0, 200.0, xtol=1e-12)
    item_mean = 0.0
    if win_rate != 0.5:
        item_mean = brentq(
            lambda mu: _population_rate(mu, sd, tie_zone) - win_rate, -60.0, 60.0, xtol=1e-12
        )
    return VoteModel(item_sd, float(rater_bias), float(tie_zone), float(item_mean))


def panel_win_rate(model: VoteModel, panel_biases: np.ndarray) -> float:
    """The fixed panel's win rate over the item population (ties as half), each rater weighted
    equally (raters are assigned uniformly, so each casts the same expected share of votes)."""
    rates = [
        _population_rate(model.item_mean + b, model.item_sd, model.tie_zone) for b in panel_biases
    ]
    return float(np.mean(rates))


def draw_panel(rng: np.random.Generator, n_raters: int, rater_bias: float) -> np.ndarray:
    """Rater biases ``Normal(0, rater_bias^2)``."""
    return rng.normal(0.0, rater_bias, n_raters) if rater_bias > 0 else np.zeros(n_raters)


def symmetric_panel(n_raters: int, rater_bias: float) -> np.ndarray:
    """A fixed panel whose biases are the normal quantiles at ``(r + 1/2) / n_raters``: mirrored
    about 0, so under the null the panel's own win rate is exactly 1/2 too."""
    quantiles = (np.arange(n_raters) + 0.5) / n_raters
    from scipy.special import ndtri

    return rater_bias * ndtri(quantiles)


def simulate_studies(
    rng: np.random.Generator,
    n_studies: int,
    *,
    n_items: int,
    raters_per_item: int,
    n_raters: int,
    agreement: str,
    rater_bias: float,
    tie_share: float,
    win_rate: float = 0.5,
    panel_biases: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_studies`` studies at once: ``(codes, raters)``, each ``(n_studies, n_items, k)``.

    ``codes`` holds 0 (base), 1 (tuned), 2 (tie); ``raters`` the rater index (distinct within an
    item). With ``panel_biases`` every study uses that panel, otherwise each draws its own.
    """
    if not 1 <= raters_per_item <= n_raters:
        raise ValueError("need 1 <= raters_per_item <= n_raters")
    model = vote_model(agreement, float(rater_bias), float(tie_share), float(win_rate))
    theta = rng.normal(model.item_mean, model.item_sd, (n_studies, n_items, 1))
    if panel_biases is None:
        biases = rng.normal(0.0, rater_bias, (n_studies, n_raters)) if rater_bias else None
    else:
        biases = np.broadcast_to(np.asarray(panel_biases, dtype=np.float64), (n_studies, n_raters))
    if raters_per_item == 1:
        raters = rng.integers(0, n_raters, (n_studies, n_items, 1))
    else:
        # k distinct raters per item: the first k of a random permutation of the panel.
        keys = rng.random((n_studies, n_items, n_raters))
        raters = np.argpartition(keys, raters_per_item - 1, axis=2)[:, :, :raters_per_item]
    eta = theta
    if biases is not None:
        eta = theta + np.take_along_axis(biases[:, None, :], raters, axis=2)
    noise = rng.logistic(0.0, 1.0, raters.shape)
    latent = eta + noise
    codes = np.where(latent > model.tie_zone, TUNED, np.where(latent < -model.tie_zone, BASE, TIE))
    return codes.astype(np.int8), raters.astype(np.int32)


def simulate_study(
    rng: np.random.Generator,
    *,
    n_items: int,
    raters_per_item: int,
    n_raters: int,
    agreement: str,
    rater_bias: float,
    tie_share: float,
    win_rate: float = 0.5,
    panel_biases: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One study as long-format votes ``(item_index, rater_index, codes)`` (see the module
    docstring for the model)."""
    codes, raters = simulate_studies(
        rng,
        1,
        n_items=n_items,
        raters_per_item=raters_per_item,
        n_raters=n_raters,
        agreement=agreement,
        rater_bias=rater_bias,
        tie_share=tie_share,
        win_rate=win_rate,
        panel_biases=panel_biases,
    )
    items = np.repeat(np.arange(n_items), raters_per_item)
    return items, raters[0].ravel().astype(np.int64), codes[0].ravel().astype(np.int64)


def counts_from_codes(codes: np.ndarray) -> np.ndarray:
    """Per-item counts ``(..., n_items, 4)`` in the code order [base, tuned, tie, both_bad]."""
    out = np.zeros((*codes.shape[:-1], 4), dtype=np.int64)
    for code in (BASE, TUNED, TIE):
        out[..., code] = (codes == code).sum(axis=-1)
    return out


def measured_alpha(
    rng: np.random.Generator, agreement: str, *, tie_share: float = 0.2, n_items: int = 4000
) -> float:
    """Krippendorff's nominal alpha of one large simulated study (3 raters per item, no bias)."""
    import krippendorff

    items, raters, codes = simulate_study(
        rng,
        n_items=n_items,
        raters_per_item=3,
        n_raters=3,
        agreement=agreement,
        rater_bias=0.0,
        tie_share=tie_share,
    )
    matrix = np.full((3, n_items), np.nan)
    matrix[raters, items] = codes
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))


def per_item_counts(item_index: np.ndarray, codes: np.ndarray, n_items: int) -> np.ndarray:
    """``(n_items, 4)`` vote counts in code order from long vote arrays (for the sequential
    bench, which cuts a study after its first ``n`` items)."""
    counts = np.zeros((n_items, 4), dtype=np.int64)
    np.add.at(counts, (item_index, codes), 1)
    return counts
