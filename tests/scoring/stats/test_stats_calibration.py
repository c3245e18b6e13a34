"""Calibration of the item-clustered win-rate inference on simulated studies: a fast version of
``bench/bench_ci_coverage.py`` (a few hundred studies in three cells; the bench runs the grid).

Tolerances are honest for the size: with 400 studies the Monte-Carlo standard error of a 95%
coverage is 1.1 points and of a 5% rejection rate 1.1 points, so the checks allow 3.5 points
(about 3 standard errors); the old vote-counting method misses by far more in the same studies.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

from bench_ci_coverage import (  # noqa: E402
    TARGETS,
    Cell,
    confirm,
    new_item_intervals,
    old_vote_counting,
    run_cell,
)
from clustered_sim import (  # noqa: E402
    panel_win_rate,
    simulate_studies,
    simulate_study,
    symmetric_panel,
    vote_model,
)

from scoring.stats.clustered import (  # noqa: E402
    cluster_variance,
    moments_from_totals,
    two_way_variance,
)
from scoring.stats.power import items_needed  # noqa: E402

STUDIES = 400
TOLERANCE = 0.035


def test_simulated_null_is_symmetric_with_the_requested_ties_and_agreement() -> None:
    model = vote_model("mid", 1.0, 0.2, 0.5)
    assert model.item_mean == 0.0
    assert panel_win_rate(model, symmetric_panel(10, 1.0)) == pytest.approx(0.5, abs=1e-12)
    assert panel_win_rate(model, np.array([1.0])) > 0.5  # one biased rater is not the population
    items, raters, codes = simulate_study(
        np.random.default_rng(0),
        n_items=4000,
        raters_per_item=3,
        n_raters=8,
        agreement="mid",
        rater_bias=0.5,
        tie_share=0.2,
    )
    assert items.shape == raters.shape == codes.shape == (12000,)
    assert np.mean(codes == 2) == pytest.approx(0.2, abs=0.02)
    score = np.array([0.0, 1.0, 0.5])[codes].mean()
    assert score == pytest.approx(0.5, abs=0.02)
    per_item = raters.reshape(4000, 3)
    assert np.all(np.sort(per_item, axis=1)[:, 1:] != np.sort(per_item, axis=1)[:, :-1])


@pytest.mark.parametrize(
    "cell",
    [
        Cell(items=100, per_item=3, agreement="mid", bias=0.5, ties=0.2, win=0.5),
        Cell(items=60, per_item=5, agreement="high", bias=1.0, ties=0.0, win=0.5),
        Cell(items=200, per_item=2, agreement="low", bias=0.5, ties=0.3, win=0.65),
    ],
    ids=lambda c: f"{c.items}x{c.per_item}-{c.agreement}-w{c.win}",
)
def test_coverage_and_type_one_error_in_three_cells(cell: Cell) -> None:
    result = run_cell(np.random.default_rng(11), cell, STUDIES, n_raters=10)
    assert abs(result["item"] - 0.95) <= TOLERANCE, result
    assert abs(result["panel"] - 0.95) <= TOLERANCE, result
    if cell.win == 0.5:
        assert abs(result["size"] - 0.05) <= TOLERANCE, result
        # The sharp null holds in the simulation, so the rate is the attainable size up to
        # Monte-Carlo noise (3.5 standard errors).
        noise = math.sqrt(result["attainable"] * (1 - result["attainable"]) / STUDIES)
        assert abs(result["size"] - result["attainable"]) <= 3.5 * noise, result
        # The peer, vote counting, in the same studies: several times the nominal error.
        assert result["old_size"] > 0.10, result
    assert result["old"] < 0.90, result


def test_one_vote_per_item_type_one_error_is_the_sign_tests_size_by_arithmetic() -> None:
    # 100 items, one vote each, no ties: 100 decisive votes in every study, so the attainable
    # size is the mid-p sign test's size on Binomial(100, 1/2), 5.69% (the exact test's: 3.52%).
    cell = Cell(items=100, per_item=1, agreement="mid", bias=0.5, ties=0.0, win=0.5)
    result = run_cell(np.random.default_rng(5), cell, 2000, n_raters=10, regimes=("fixed",))
    wins = np.arange(101)
    mid_p = np.minimum(1, 2 * binom.cdf(np.minimum(wins, 100 - wins), 100, 0.5))
    mid_p -= binom.pmf(wins, 100, 0.5)  # two-sided: P(|T| > t) + P(|T| = t) / 2
    mid_p[50] = 1.0
    size = binom.pmf(wins, 100, 0.5)[mid_p < 0.05].sum()
    assert size == pytest.approx(0.0569, abs=1e-4)
    assert result["attainable"] == pytest.approx(size, abs=1e-12)
    assert abs(result["size"] - size) <= 3.5 * math.sqrt(size * (1 - size) / 2000), result
    assert math.isnan(result["panel"])  # the random-panel regime was not run


def test_only_cells_outside_a_band_are_rerun_with_the_regime_they_need() -> None:
    cell = Cell(items=30, per_item=3, agreement="mid", bias=0.5, ties=0.2, win=0.5)
    inside = {"item": 0.95, "panel": 0.95, "size": 0.05}
    type_one_miss = {**inside, "size": 0.075}
    panel_miss = {**inside, "panel": 0.92}
    rows = [(cell, inside), (cell, type_one_miss), (cell, panel_miss)]
    confirmed = confirm(3, rows, 300, n_raters=10)
    assert set(confirmed) == {(1, "type I error"), (2, "panel coverage")}
    assert not math.isnan(confirmed[(1, "type I error")]["size"])
    assert math.isnan(confirmed[(1, "type I error")]["panel"])
    assert math.isnan(confirmed[(2, "panel coverage")]["size"])
    assert [t.name for t in TARGETS] == ["item coverage", "panel coverage", "type I error"]


def _two_way_moments(bias: float, agreement: str, studies: int = 2000):
    codes, raters = simulate_studies(
        np.random.default_rng(1),
        studies,
        n_items=200,
        raters_per_item=5,
        n_raters=10,
        agreement=agreement,
        rater_bias=bias,
        tie_share=0.2,
    )
    score = np.array([0.0, 1.0, 0.5])[codes]
    tie = (codes == 2).astype(np.float64)
    item = moments_from_totals(score.sum(-1), np.full(score.shape[:2], 5.0), tie.sum(-1))
    flat = (np.arange(studies)[:, None, None] * 10 + raters).ravel()

    def per_rater(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(flat, weights, studies * 10).reshape(studies, 10)

    rater = moments_from_totals(per_rater(score.ravel()), per_rater(None), per_rater(tie.ravel()))
    return item, rater


def test_two_way_variance_is_unbiased_with_few_raters() -> None:
    # Raters who do not differ: the panel's variance is the item variance, which CR1 estimates
    # without bias. The two-way sum with a CR1 factor per term falls 8% short here (10 raters
    # sharing items, design effect near 4); the corrected one does not.
    item, rater = _two_way_moments(bias=0.0, agreement="mid", studies=1000)
    _, v_items, vote_var = cluster_variance(item)
    _, v_raters, _ = cluster_variance(rater)
    uncorrected = v_items + v_raters - vote_var / item.n_votes
    assert two_way_variance(item, rater).mean() / v_items.mean() == pytest.approx(1.0, abs=0.02)
    assert uncorrected.mean() / v_items.mean() < 0.93
    # Raters who differ (1 logit): it follows the study-to-study variance of the estimate,
    # five times the item variance.
    item, rater = _two_way_moments(bias=1.0, agreement="low")
    estimate = item.score / item.n_votes
    ratio = two_way_variance(item, rater).mean() / estimate.var()
    assert ratio == pytest.approx(1.0, abs=0.1)
    assert cluster_variance(item)[1].mean() / estimate.var() < 0.3


def test_planned_study_has_its_power() -> None:
    # ICC 0.786 is the design effect's ICC of the "mid" cell with 20% ties (measured).
    plan = items_needed(difference=0.1, votes_per_item=3, icc=0.786, tie_share=0.2)
    codes, _ = simulate_studies(
        np.random.default_rng(2),
        STUDIES,
        n_items=plan.n_items,
        raters_per_item=3,
        n_raters=3,
        agreement="mid",
        rater_bias=0.0,
        tie_share=0.2,
        win_rate=0.6,
    )
    low, _, _, _, _ = new_item_intervals(codes)
    assert np.mean(low > 0.5) == pytest.approx(0.8, abs=TOLERANCE + 0.01)
    old_low, _, _ = old_vote_counting(codes)
    assert np.mean(old_low > 0.5) > 0.9  # counting votes overstates the power


def test_bench_smoke_runs_quickly_and_reports_the_peer() -> None:
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, str(BENCH / "bench_ci_coverage.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert time.perf_counter() - start < 20
    out = completed.stdout
    assert "ratio old/new" in out and "type I error" in out and "panel coverage" in out
    assert "win_rate_gate 1 distinct verdict(s)" in out
    assert "confirmation: each cell outside a band rerun" in out
    assert "against the attainable size" in out
