"""Simulated A/B studies whose votes are clustered by item (and, optionally, by rater).

Each vote is an ordered-logit draw (McCullagh 1980): rater ``r`` on item ``i`` sees the latent
preference ``y = mu_i + b_r + e`` with ``e`` standard logistic and votes tuned when ``y > tau``,
base when ``y < -tau`` and "no preference" in between: a tie, or both-bad on the quarter of the
items whose two outputs are both bad (both scored as half).

* Items: ``mu_i ~ N(shift, sd_item^2)``; ``sd_item`` sets the agreement between raters
  (:data:`ITEM_SD`, calibrated so nominal Krippendorff's alpha is about 0.3 / 0.6 / 0.85 for
  ``"low"`` / ``"mid"`` / ``"high"`` with 10% ties, 3 raters per item and no rater bias; ties
  and rater bias lower it).
* Raters: a logit bias ``b_r`` with standard deviation ``rater_bias``, drawn antithetically
  (``+b`` and ``-b`` in pairs, a lone odd rater gets 0) so the panel has no net lean: under the
  null, rater ``+b`` and rater ``-b`` have mirror-image vote distributions and, as every vote's
  rater is uniform over the panel, the population win rate (ties as half) is exactly 1/2. The
  biases still correlate the votes of one rater across items and add spread between raters.
* Each item gets ``raters_per_item`` distinct raters drawn at random from ``n_raters``.
* ``tau`` and ``shift`` solve ``P(no preference) = tie_share`` and ``P(tuned) + tie_share / 2 =
  win_rate`` over ``mu + b ~ N(shift, sd_item^2 + rater_bias^2)`` (Gauss-Hermite quadrature);
  ``shift = 0`` under the null, by symmetry. Under an alternative with rater bias the panel's
  biases are a +-pair mixture rather than normal, so the realised win rate is within about 0.01
  of ``win_rate``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

BASE, TUNED, TIE, BOTH_BAD = 0, 1, 2, 3

# sd of the item logits per agreement level (see the module docstring for the calibration).
ITEM_SD = {"low": 1.75, "mid": 4.8, "high": 17.5}

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _vote_shares(shift: float, tau: float, spread: float) -> tuple[float, float]:
    """P(tuned), P(base) for ``y = x + e``, ``x ~ N(shift, spread^2)``, logistic ``e``."""
    x = shift + spread * _NODES
    return float(_WEIGHTS @ expit(x - tau)), float(_WEIGHTS @ expit(-tau - x))


def _tau_for(shift: float, spread: float, tie_share: float) -> float:
    if tie_share <= 0.0:
        return 0.0

    def excess(tau: float) -> float:
        tuned, base = _vote_shares(shift, tau, spread)
        return 1.0 - tuned - base - tie_share

    return brentq(excess, 0.0, 400.0, xtol=1e-12)


@lru_cache(maxsize=256)
def latent_parameters(
    agreement: str, rater_bias: float, tie_share: float, win_rate: float
) -> tuple[float, float, float]:
    """``(shift, tau, sd_item)`` that give the requested tie share and win rate."""
    if agreement not in ITEM_SD:
        raise ValueError(f"agreement must be one of {sorted(ITEM_SD)}, got {agreement!r}")
    if not 0.0 <= tie_share < 1.0:
        raise ValueError(f"tie_share must be in [0, 1), got {tie_share}")
    half = tie_share / 2.0
    if not half < win_rate < 1.0 - half:
        raise ValueError(f"win_rate must be in ({half}, {1 - half}) with tie_share {tie_share}")
    sd_item = ITEM_SD[agreement]
    spread = math.hypot(sd_item, rater_bias)
    if win_rate == 0.5:
        return 0.0, _tau_for(0.0, spread, tie_share), sd_item

    def excess(shift: float) -> float:
        tuned, _ = _vote_shares(shift, _tau_for(shift, spread, tie_share), spread)
        return tuned + half - win_rate

    shift = brentq(excess, -40.0, 40.0, xtol=1e-12)
    return shift, _tau_for(shift, spread, tie_share), sd_item


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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One simulated study as long vote arrays ``(item_index, rater_index, codes)``.

    Items come in order (``item_index`` 0, 0, 0, 1, 1, 1, ...), so the first ``n`` items are a
    study stopped after ``n`` completed items. Codes are ``[base=0, tuned=1, tie=2, both_bad=3]``.
    """
    if raters_per_item > n_raters:
        raise ValueError("raters_per_item cannot exceed n_raters")
    shift, tau, sd_item = latent_parameters(agreement, float(rater_bias), tie_share, win_rate)
    half = rng.normal(scale=rater_bias, size=n_raters // 2)
    bias = np.concatenate([half, -half, np.zeros(n_raters % 2)])
    mu = shift + sd_item * rng.standard_normal(n_items)
    raters = np.argsort(rng.random((n_items, n_raters)), axis=1)[:, :raters_per_item]
    latent = mu[:, None] + bias[raters] + rng.logistic(size=raters.shape)
    # Whether "no preference" means a tie or both-bad is a property of the item (both outputs
    # bad), so raters agree on it.
    no_preference = np.where(rng.random(n_items) < 0.75, TIE, BOTH_BAD)[:, None]
    codes = np.where(latent > tau, TUNED, np.where(latent < -tau, BASE, no_preference))
    item_index = np.repeat(np.arange(n_items), raters_per_item)
    return item_index, raters.ravel(), codes.ravel().astype(np.int64)


def per_item_counts(item_index: np.ndarray, codes: np.ndarray, n_items: int) -> np.ndarray:
    """``(n_items, 4)`` vote counts in code order from long vote arrays."""
    counts = np.zeros((n_items, 4), dtype=np.int64)
    np.add.at(counts, (item_index, codes), 1)
    return counts
