"""Calibration of the item-clustered win-rate inference on simulated studies: a fast version of
``bench/bench_ci_coverage.py`` (a few hundred studies in three cells; the bench runs the grid).

Tolerances are honest for the size: with 400 studies the Monte-Carlo standard error of a 95%
coverage is 1.1 points and of a 5% rejection rate 1.1 points, so the checks allow 3.5 points
(about 3 standard errors); the old vote-counting method misses by far more in the same studies.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
sys.path.insert(0, str(BENCH))

from bench_ci_coverage import (  # noqa: E402
    Cell,
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
        # The peer, vote counting, in the same studies: several times the nominal error.
        assert result["old_size"] > 0.10, result
    assert result["old"] < 0.90, result


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
