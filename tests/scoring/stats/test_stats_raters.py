"""Per-rater statistics, flags and dropping raters from the matrix."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from scoring.stats.raters import (
    FLAG_LOW_GOLD_ACCURACY,
    FLAG_LOW_MAJORITY_AGREEMENT,
    FLAG_POSITION_BIAS,
    FLAG_TOO_FAST,
    RaterThresholds,
    drop_raters,
    flagged_raters,
    rater_reports,
)
from scoring.stats.votes import BASE, BOTH_BAD, TIE, TUNED, Vote, votes_to_matrix


def _study() -> list[Vote]:
    """30 items; 'good' and 'ok' mostly prefer tuned; 'lefty' always picks the left slot fast."""
    rng = np.random.default_rng(0)
    votes = []
    for item in range(30):
        left = TUNED if item % 2 == 0 else BASE
        votes.append(Vote("good", item, TUNED, left=left, seconds=40.0 + item))
        ok_choice = TUNED if item % 5 else BASE
        votes.append(Vote("ok", item, ok_choice, left=1 - left, seconds=30.0))
        votes.append(Vote("lefty", item, left, left=left, seconds=float(rng.uniform(1, 3))))
    return votes


def test_reports_compute_the_statistics() -> None:
    reports = {r.rater: r for r in rater_reports(_study())}
    good, ok, lefty = reports["good"], reports["ok"], reports["lefty"]
    assert good.n_votes == ok.n_votes == lefty.n_votes == 30
    assert good.median_seconds == pytest.approx(np.median(40.0 + np.arange(30)))
    assert lefty.left_rate == 1.0
    assert lefty.n_left_decisions == 30
    assert lefty.left_p_value == pytest.approx(binomtest(30, 30, 0.5).pvalue)
    assert good.left_rate == pytest.approx(0.5)
    # Leave-one-out majority for 'good': the other two are 'ok' and 'lefty'; a majority exists
    # only where they agree (else 1-1 split), and then 'good' agrees iff it is tuned.
    expected_hits, expected_n = 0, 0
    for item in range(30):
        left = TUNED if item % 2 == 0 else BASE
        others = {TUNED if item % 5 else BASE, left}
        if len(others) == 1:
            expected_n += 1
            expected_hits += others == {TUNED}
    assert good.n_majority == expected_n
    assert good.majority_agreement == pytest.approx(expected_hits / expected_n)
    assert np.isnan(good.gold_accuracy) and good.n_gold == 0


def test_flags_against_thresholds() -> None:
    gold = {0: TUNED, 2: TUNED, 4: TUNED, 6: TUNED, 8: TUNED, 10: {TUNED, TIE}}
    thresholds = RaterThresholds(
        min_votes_to_judge=5,
        min_median_seconds=5.0,
        position_bias_p_value=0.01,
        min_majority_agreement=0.5,
        min_gold_accuracy=0.8,
    )
    reports = {r.rater: r for r in rater_reports(_study(), gold=gold, thresholds=thresholds)}
    assert reports["good"].flags == ()
    assert reports["good"].gold_accuracy == 1.0 and reports["good"].n_gold == 6
    assert reports["ok"].gold_accuracy == pytest.approx(4 / 6)  # items 0 and 10 -> base
    assert FLAG_LOW_GOLD_ACCURACY in reports["ok"].flags
    assert set(reports["lefty"].flags) >= {FLAG_TOO_FAST, FLAG_POSITION_BIAS}
    assert flagged_raters(reports.values()) == frozenset({"ok", "lefty"})


def test_rate_flags_wait_for_enough_votes() -> None:
    votes = [Vote("r", i, TUNED, left=TUNED, seconds=1.0) for i in range(4)]
    thresholds = RaterThresholds(min_votes_to_judge=10, min_median_seconds=5.0)
    (report,) = rater_reports(votes, thresholds=thresholds)
    assert report.flags == ()
    enough = RaterThresholds(min_votes_to_judge=4, min_median_seconds=5.0)
    (report,) = rater_reports(votes, thresholds=enough)
    assert report.flags == (FLAG_TOO_FAST,)


def test_low_majority_agreement_flag_and_both_bad_as_tie() -> None:
    votes = []
    for item in range(12):
        votes += [Vote("a", item, TUNED), Vote("b", item, TUNED), Vote("contrarian", item, BASE)]
    votes += [Vote("a", 99, TIE), Vote("b", 99, BOTH_BAD)]  # both-bad agrees with tie
    thresholds = RaterThresholds(min_votes_to_judge=5, min_majority_agreement=0.6)
    reports = {r.rater: r for r in rater_reports(votes, thresholds=thresholds)}
    assert reports["contrarian"].majority_agreement == 0.0
    assert reports["contrarian"].flags == (FLAG_LOW_MAJORITY_AGREEMENT,)
    # For 'a' the others split 1-1 (b tuned, contrarian base) on items 0-11: no majority there;
    # on item 99 the only other vote is b's both-bad, which counts as agreeing with a's tie.
    assert reports["a"].n_majority == 1
    assert reports["a"].majority_agreement == 1.0


def test_missing_times_and_slots() -> None:
    (report,) = rater_reports([Vote("r", 1, TUNED), Vote("r", 2, TIE)])
    assert np.isnan(report.median_seconds) and report.n_timed == 0
    assert np.isnan(report.left_rate) and report.left_p_value == 1.0
    assert rater_reports([]) == ()


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="left"):
        rater_reports([Vote("r", 1, TUNED, left=2)])
    with pytest.raises(ValueError, match="seconds"):
        rater_reports([Vote("r", 1, TUNED, seconds=-1.0)])
    with pytest.raises(ValueError, match="preference codes"):
        rater_reports([Vote("r", 1, 7)])
    with pytest.raises(ValueError, match="gold"):
        rater_reports([Vote("r", 1, TUNED)], gold={1: 9})
    with pytest.raises(ValueError, match="min_votes_to_judge"):
        RaterThresholds(min_votes_to_judge=0)
    with pytest.raises(ValueError, match="min_gold_accuracy"):
        RaterThresholds(min_gold_accuracy=1.5)


def test_drop_raters_from_matrix() -> None:
    matrix = votes_to_matrix(_study())
    original = matrix.data.copy()
    data, kept = drop_raters(matrix.data, matrix.raters, {"lefty"})
    assert kept == ("good", "ok")
    assert data.shape == (2, 30)
    np.testing.assert_array_equal(data, original[:2])
    np.testing.assert_array_equal(matrix.data, original)  # input untouched
    with pytest.raises(ValueError, match="rater ids"):
        drop_raters(matrix.data, ("good",), set())
