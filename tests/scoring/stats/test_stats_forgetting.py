"""Catastrophic forgetting on the general hold-out set, tested as non-inferiority."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.stats.forgetting import (
    INFERIOR,
    NO_EVIDENCE,
    NO_INTERVAL,
    NON_INFERIOR,
    NOT_SHOWN,
    TOO_IMPRECISE,
    MetricDelta,
    detect_forgetting,
)

NONE = {"perplexity_base": None, "perplexity_tuned": None}


def test_a_large_drop_with_a_wide_interval_is_not_shown_non_inferior() -> None:
    # The old rule passed this: the interval reaches zero, so it was "not significantly worse".
    report = detect_forgetting(
        **NONE, metric_deltas={"accuracy": MetricDelta(0.70, 0.50, -0.20, -0.45, 0.05)}
    )
    assert report.evaluated and report.flagged
    (check,) = report.metrics
    assert (check.outcome, check.passed, check.worst_case) == (TOO_IMPRECISE, False, -0.45)
    assert check.half_width == pytest.approx(0.25)
    assert report.reasons == (
        "accuracy: not shown to be non-inferior: the interval's half-width 0.25 is at least the "
        "margin 0.02, so even no change could not be shown non-inferior: the hold-out set is too "
        "small (delta -0.2, CI [-0.45, 0.05], higher is better)",
    )


def test_the_whole_interval_must_lie_within_the_margin() -> None:
    deltas = {
        "bleu": MetricDelta(30.0, 30.2, 0.2, -0.01, 0.41),  # inside: passes
        "chrf": MetricDelta(50.0, 50.0, 0.0, -0.015, 0.015),  # inside: passes
        "f1": MetricDelta(0.60, 0.593, -0.007, -0.022, 0.008),  # reaches -0.022 < -0.02
        "rouge": MetricDelta(0.40, 0.34, -0.06, -0.07, -0.05),  # wholly beyond the margin
    }
    report = detect_forgetting(**NONE, metric_deltas=deltas)
    outcomes = {m.name: (m.outcome, m.passed) for m in report.metrics}
    assert outcomes == {
        "bleu": (NON_INFERIOR, True),
        "chrf": (NON_INFERIOR, True),
        "f1": (NOT_SHOWN, False),
        "rouge": (INFERIOR, False),
    }
    assert report.flagged and report.reasons == (
        "f1: not shown to be non-inferior: the interval reaches beyond the margin 0.02 "
        "(delta -0.007, CI [-0.022, 0.008], higher is better)",
        "rouge: not shown to be non-inferior: the whole interval is worse than the margin 0.02 "
        "(delta -0.06, CI [-0.07, -0.05], higher is better)",
    )
    assert report.metrics[0].reason == (
        "bleu: non-inferior: the whole interval is within the margin 0.02 "
        "(delta +0.2, CI [-0.01, 0.41], higher is better)"
    )
    # A wider margin lets f1 and rouge pass.
    wide = detect_forgetting(**NONE, metric_deltas=deltas, max_metric_drop=0.08)
    assert not wide.flagged and all(m.passed for m in wide.metrics)


def test_an_interval_bound_exactly_at_the_margin_fails() -> None:
    at = detect_forgetting(**NONE, metric_deltas={"m": MetricDelta(1, 1, 0.0, -0.02, 0.01)})
    assert at.flagged and at.metrics[0].outcome == NOT_SHOWN
    inside = detect_forgetting(**NONE, metric_deltas={"m": MetricDelta(1, 1, 0.0, -0.0199, 0.01)})
    assert not inside.flagged


def test_identical_models_with_a_degenerate_zero_interval_pass() -> None:
    report = detect_forgetting(**NONE, metric_deltas={"bleu": MetricDelta(20, 20, 0, 0, 0)})
    assert report.evaluated and not report.flagged and report.reasons == ()


def test_lower_is_better_mirrored() -> None:
    worse = MetricDelta(0.10, 0.115, 0.015, 0.005, 0.025, lower_is_better=True)
    better = MetricDelta(0.16, 0.10, -0.06, -0.09, -0.03, lower_is_better=True)
    report = detect_forgetting(**NONE, metric_deltas={"error_rate": worse, "toxicity": better})
    error_rate, toxicity = report.metrics
    assert (error_rate.outcome, error_rate.worst_case) == (NOT_SHOWN, -0.025)
    assert (toxicity.outcome, toxicity.worst_case) == (NON_INFERIOR, 0.03)
    assert report.reasons == (
        "error_rate: not shown to be non-inferior: the interval reaches beyond the margin 0.02 "
        "(delta +0.015, CI [0.005, 0.025], lower is better)",
    )
    # The same numbers read as higher-is-better flip the verdicts.
    plain = detect_forgetting(
        **NONE,
        metric_deltas={
            "a": MetricDelta(0.10, 0.115, 0.015, 0.005, 0.025),
            "b": MetricDelta(0.16, 0.10, -0.06, -0.09, -0.03),
        },
    )
    assert [m.outcome for m in plain.metrics] == [NON_INFERIOR, INFERIOR]


finite = st.floats(-1.0, 1.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(finite, finite, st.floats(0.0, 0.2), st.booleans())
def test_mirroring_a_metric_keeps_its_verdict(a: float, b: float, margin: float, lib: bool) -> None:
    low, high = min(a, b), max(a, b)
    metric = MetricDelta(0.5, 0.5 + (low + high) / 2, (low + high) / 2, low, high, lib)
    mirrored = MetricDelta(0.5, 0.5 - (low + high) / 2, -(low + high) / 2, -high, -low, not lib)
    kwargs = {**NONE, "max_metric_drop": margin}
    first = detect_forgetting(metric_deltas={"m": metric}, **kwargs)
    second = detect_forgetting(metric_deltas={"m": mirrored}, **kwargs)
    assert first.flagged == second.flagged
    assert first.metrics[0].outcome == second.metrics[0].outcome
    assert first.metrics[0].worst_case == second.metrics[0].worst_case


@settings(max_examples=60, deadline=None)
@given(finite, finite, st.floats(0.0, 0.2))
def test_passing_means_the_whole_interval_is_inside(a: float, b: float, margin: float) -> None:
    low, high = min(a, b), max(a, b)
    check = detect_forgetting(
        **NONE,
        metric_deltas={"m": MetricDelta(0, 0, (low + high) / 2, low, high)},
        max_metric_drop=margin,
    ).metrics[0]
    assert check.passed == (low > -margin + 1e-12)


def test_a_missing_interval_fails_as_not_shown() -> None:
    report = detect_forgetting(
        perplexity_base=12.0,
        perplexity_tuned=None,
        metric_deltas={"accuracy": MetricDelta(0.7, 0.72, 0.02, math.nan, math.nan)},
    )
    assert report.evaluated and report.flagged
    (check,) = report.metrics
    assert (check.outcome, check.evaluated, check.passed) == (NO_INTERVAL, False, False)
    assert report.reasons == (
        "accuracy: not shown to be non-inferior: no confidence interval (too few hold-out items "
        "to resample?) (delta +0.02, CI [nan, nan], higher is better)",
    )
    assert report.notes == ("perplexity_tuned missing (None or NaN): perplexity not compared",)


def test_not_evaluated_without_evidence() -> None:
    report = detect_forgetting(**NONE, metric_deltas={})
    assert not report.evaluated and not report.flagged
    assert report.reasons == (NO_EVIDENCE,) == ("no general hold-out evidence",)
    assert report.metrics == () and report.notes == ()
    half = detect_forgetting(perplexity_base=math.nan, perplexity_tuned=9.0, metric_deltas={})
    assert not half.evaluated and half.perplexity_base is None
    assert half.notes == ("perplexity_base missing (None or NaN): perplexity not compared",)


def test_perplexity_point_check_without_an_interval() -> None:
    report = detect_forgetting(perplexity_base=10.0, perplexity_tuned=11.5, metric_deltas={})
    assert report.evaluated and report.flagged and report.perplexity_outcome == "point_fail"
    assert report.perplexity_relative_change == pytest.approx(0.15)
    assert report.reasons == (
        "hold-out perplexity rose 15.0% (base 10 -> tuned 11.5), above the 10.0% limit",
    )
    assert report.notes == ("hold-out perplexity compared on point estimates (no interval given)",)
    at_limit = detect_forgetting(perplexity_base=10.0, perplexity_tuned=11.0, metric_deltas={})
    assert not at_limit.flagged and at_limit.perplexity_outcome == "point_pass"
    better = detect_forgetting(perplexity_base=10.0, perplexity_tuned=8.0, metric_deltas={})
    assert not better.flagged
    diverged = detect_forgetting(perplexity_base=10.0, perplexity_tuned=math.inf, metric_deltas={})
    assert diverged.flagged and diverged.perplexity_relative_change == math.inf


def test_perplexity_with_an_interval_is_read_like_a_metric() -> None:
    def run(ci: tuple[float, float]) -> tuple[str | None, tuple[str, ...]]:
        report = detect_forgetting(
            perplexity_base=10.0, perplexity_tuned=10.3, metric_deltas={}, perplexity_increase_ci=ci
        )
        return report.perplexity_outcome, report.reasons

    assert run((0.01, 0.05)) == (NON_INFERIOR, ())
    # A point increase of 3 % passes the point check but not non-inferiority: the interval
    # allows 14 %.
    outcome, reasons = run((-0.08, 0.14))
    assert outcome == TOO_IMPRECISE
    assert reasons == (
        "hold-out perplexity: not shown to be non-inferior: the interval's half-width 0.11 is "
        "at least the margin 10.0%, so even no change could not be shown non-inferior: the "
        "hold-out set is too small (relative increase +3.0%, CI [-8.0%, +14.0%], base 10 -> "
        "tuned 10.3)",
    )
    assert run((0.02, 0.12))[0] == NOT_SHOWN
    assert run((0.12, 0.2))[0] == INFERIOR
    nan_interval = detect_forgetting(
        perplexity_base=10.0,
        perplexity_tuned=10.3,
        metric_deltas={},
        perplexity_increase_ci=(math.nan, math.nan),
    )
    assert nan_interval.perplexity_outcome == "point_pass"
    assert nan_interval.perplexity_ci_low is None


def test_metrics_and_perplexity_together() -> None:
    ok = {"accuracy": MetricDelta(0.7, 0.71, 0.01, -0.01, 0.03)}
    report = detect_forgetting(**NONE, metric_deltas=ok)
    assert report.evaluated and not report.flagged
    both = detect_forgetting(perplexity_base=5.0, perplexity_tuned=6.0, metric_deltas=ok)
    assert both.flagged and len(both.reasons) == 1
    assert both.perplexity_relative_change == pytest.approx(0.2)


def test_input_not_mutated() -> None:
    deltas = {"accuracy": MetricDelta(0.7, 0.6, -0.1, -0.15, -0.05)}
    snapshot = dict(deltas)
    detect_forgetting(**NONE, metric_deltas=deltas)
    assert deltas == snapshot


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"perplexity_base": 0.0}, r"perplexity_base: must be a number > 0 or None, got 0.0"),
        ({"perplexity_base": math.inf}, r"perplexity_base: must be finite, got inf"),
        ({"perplexity_tuned": -3.0}, r"perplexity_tuned: must be a number > 0 or None"),
        ({"perplexity_tuned": "9"}, r"perplexity_tuned: must be a number > 0 or None"),
        ({"max_perplexity_increase": -0.1}, r"max_perplexity_increase must be finite and >= 0"),
        ({"max_metric_drop": math.inf}, r"max_metric_drop must be finite and >= 0"),
        (
            {"metric_deltas": {"bleu": MetricDelta(1, 1, 0, 0.3, 0.1)}},
            r"metric_deltas\['bleu'\]: ci_low 0.3 is above ci_high 0.1",
        ),
        (
            {"metric_deltas": {"bleu": (1, 1, 0, 0, 0)}},
            r"metric_deltas\['bleu'\]: expected a MetricDelta, got tuple",
        ),
        ({"perplexity_increase_ci": (0.2, 0.1)}, r"perplexity_increase_ci: low 0.2 is above"),
        ({"perplexity_increase_ci": (-1.5, 0.1)}, r"perplexity_increase_ci: a relative change"),
        ({"perplexity_increase_ci": "wide"}, r"perplexity_increase_ci: expected \(low, high\)"),
    ],
)
def test_bad_input_rejected(kwargs: dict, message: str) -> None:
    arguments = {"perplexity_base": 10.0, "perplexity_tuned": 10.0, "metric_deltas": {}}
    with pytest.raises(ValueError, match=message):
        detect_forgetting(**{**arguments, **kwargs})


def test_each_metric_is_read_against_its_own_margin() -> None:
    # BLEU on 0-100 with a 2-point margin, accuracy on 0-1 with the default 0.02.
    bleu = MetricDelta(base=30.0, tuned=29.5, delta=-0.5, ci_low=-1.4, ci_high=0.4)
    accuracy = MetricDelta(base=0.80, tuned=0.74, delta=-0.06, ci_low=-0.09, ci_high=-0.03)
    one_margin = detect_forgetting(
        perplexity_base=None,
        perplexity_tuned=None,
        metric_deltas={"corpus_bleu": bleu, "exact_match": accuracy},
        max_metric_drop=0.02,
    )
    # The default margin cannot read BLEU: its interval is far wider than 0.02 points.
    assert [c.outcome for c in one_margin.metrics] == ["too_imprecise", "inferior"]
    own = detect_forgetting(
        perplexity_base=None,
        perplexity_tuned=None,
        metric_deltas={"corpus_bleu": bleu, "exact_match": accuracy},
        max_metric_drop=0.02,
        metric_margins={"corpus_bleu": 2.0, "rouge1": 0.05},
    )
    bleu_check, accuracy_check = own.metrics
    assert bleu_check.passed and bleu_check.margin == 2.0 and "margin 2 " in bleu_check.reason
    # Raising BLEU's margin leaves accuracy on its own: its 6-point drop still fails.
    assert not accuracy_check.passed and accuracy_check.margin == 0.02
    assert own.flagged and own.reasons == (accuracy_check.reason,)
    assert own.metric_margins == {"corpus_bleu": 2.0, "rouge1": 0.05}


@pytest.mark.parametrize("margin", [-0.1, math.inf, math.nan, "2", True])
def test_a_bad_per_metric_margin_is_refused(margin) -> None:
    with pytest.raises(ValueError, match=r"metric_margins\['corpus_bleu'\]"):
        detect_forgetting(
            perplexity_base=None,
            perplexity_tuned=None,
            metric_deltas={},
            metric_margins={"corpus_bleu": margin},
        )
