"""Catastrophic-forgetting detection on the general hold-out set."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.stats.forgetting import NO_EVIDENCE, MetricDelta, detect_forgetting


def test_perplexity_rise_flagged() -> None:
    report = detect_forgetting(perplexity_base=10.0, perplexity_tuned=11.5, metric_deltas={})
    assert report.evaluated and report.flagged
    assert report.perplexity_relative_change == pytest.approx(0.15)
    assert report.reasons == (
        "hold-out perplexity rose 15.0% (base 10 -> tuned 11.5), above the 10.0% limit",
    )


def test_small_perplexity_rise_and_exact_limit_pass() -> None:
    report = detect_forgetting(perplexity_base=10.0, perplexity_tuned=10.5, metric_deltas={})
    assert report.evaluated and not report.flagged and report.reasons == ()
    at_limit = detect_forgetting(perplexity_base=10.0, perplexity_tuned=11.0, metric_deltas={})
    assert not at_limit.flagged
    better = detect_forgetting(perplexity_base=10.0, perplexity_tuned=8.0, metric_deltas={})
    assert better.perplexity_relative_change == pytest.approx(-0.2) and not better.flagged


def test_infinite_tuned_perplexity_flagged() -> None:
    report = detect_forgetting(perplexity_base=10.0, perplexity_tuned=math.inf, metric_deltas={})
    assert report.flagged and report.perplexity_relative_change == math.inf


def test_metric_significantly_worse_flagged() -> None:
    deltas = {
        "accuracy": MetricDelta(0.70, 0.64, -0.06, -0.09, -0.03),
        "f1": MetricDelta(0.60, 0.57, -0.03, -0.07, 0.01),  # worse, but CI reaches the margin
    }
    report = detect_forgetting(perplexity_base=None, perplexity_tuned=None, metric_deltas=deltas)
    assert report.evaluated and report.flagged
    assert report.perplexity_relative_change is None
    assert report.reasons == (
        "accuracy: significantly worse by more than 0.02 on the general hold-out set "
        "(delta -0.06, CI [-0.09, -0.03], higher is better)",
    )
    accuracy, f1 = report.metrics
    assert (accuracy.name, accuracy.passed, accuracy.evaluated) == ("accuracy", False, True)
    assert accuracy.worse_bound == -0.03
    assert (f1.name, f1.passed, f1.evaluated) == ("f1", True, True)
    assert f1.reason == (
        "f1: not significantly worse by more than 0.02 (delta -0.03, CI [-0.07, 0.01], "
        "higher is better)"
    )
    # A wider margin lets the accuracy drop pass.
    wide = detect_forgetting(
        perplexity_base=None, perplexity_tuned=None, metric_deltas=deltas, max_metric_drop=0.05
    )
    assert not wide.flagged


def test_lower_is_better_mirrored() -> None:
    worse = MetricDelta(0.10, 0.16, 0.06, 0.03, 0.09, lower_is_better=True)
    better = MetricDelta(0.16, 0.10, -0.06, -0.09, -0.03, lower_is_better=True)
    report = detect_forgetting(
        perplexity_base=None,
        perplexity_tuned=None,
        metric_deltas={"error_rate": worse, "toxicity": better},
    )
    assert report.flagged
    error_rate, toxicity = report.metrics
    assert not error_rate.passed and error_rate.worse_bound == -0.03
    assert toxicity.passed and toxicity.worse_bound == 0.09
    assert report.reasons == (
        "error_rate: significantly worse by more than 0.02 on the general hold-out set "
        "(delta +0.06, CI [0.03, 0.09], lower is better)",
    )
    # The same numbers read as higher-is-better flip the verdicts.
    plain = detect_forgetting(
        perplexity_base=None,
        perplexity_tuned=None,
        metric_deltas={
            "a": MetricDelta(0.10, 0.16, 0.06, 0.03, 0.09),
            "b": MetricDelta(0.16, 0.10, -0.06, -0.09, -0.03),
        },
    )
    assert [m.passed for m in plain.metrics] == [True, False]


finite = st.floats(-1.0, 1.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(finite, finite, st.floats(0.0, 0.2), st.booleans())
def test_mirroring_a_metric_keeps_its_verdict(a: float, b: float, margin: float, lib: bool) -> None:
    low, high = min(a, b), max(a, b)
    metric = MetricDelta(0.5, 0.5 + (low + high) / 2, (low + high) / 2, low, high, lib)
    mirrored = MetricDelta(0.5, 0.5 - (low + high) / 2, -(low + high) / 2, -high, -low, not lib)
    kwargs = {"perplexity_base": None, "perplexity_tuned": None, "max_metric_drop": margin}
    first = detect_forgetting(metric_deltas={"m": metric}, **kwargs)
    second = detect_forgetting(metric_deltas={"m": mirrored}, **kwargs)
    assert first.flagged == second.flagged
    assert first.metrics[0].worse_bound == second.metrics[0].worse_bound


def test_not_evaluated_without_evidence() -> None:
    report = detect_forgetting(perplexity_base=None, perplexity_tuned=None, metric_deltas={})
    assert not report.evaluated and not report.flagged
    assert report.reasons == (NO_EVIDENCE,) == ("no general hold-out evidence",)
    assert report.metrics == () and report.notes == ()


def test_half_evidence_is_not_evaluated() -> None:
    report = detect_forgetting(
        perplexity_base=12.0,
        perplexity_tuned=None,
        metric_deltas={"accuracy": MetricDelta(0.7, 0.5, -0.2, math.nan, math.nan)},
    )
    assert not report.evaluated and not report.flagged
    assert report.reasons == (NO_EVIDENCE,)
    assert report.metrics[0].evaluated is False and report.metrics[0].passed
    assert report.notes == (
        "perplexity_tuned missing (None or NaN): perplexity not compared",
        "accuracy: no finite confidence interval, not judged "
        "(delta -0.2, CI [nan, nan], higher is better)",
    )


def test_nan_perplexity_counts_as_not_measured() -> None:
    report = detect_forgetting(perplexity_base=math.nan, perplexity_tuned=9.0, metric_deltas={})
    assert not report.evaluated and report.perplexity_base is None
    assert report.notes == ("perplexity_base missing (None or NaN): perplexity not compared",)


def test_metrics_alone_or_perplexity_alone_evaluate() -> None:
    ok = {"accuracy": MetricDelta(0.7, 0.71, 0.01, -0.01, 0.03)}
    report = detect_forgetting(perplexity_base=None, perplexity_tuned=None, metric_deltas=ok)
    assert report.evaluated and not report.flagged
    both = detect_forgetting(perplexity_base=5.0, perplexity_tuned=6.0, metric_deltas=ok)
    assert both.flagged and len(both.reasons) == 1
    assert both.perplexity_relative_change == pytest.approx(0.2)


def test_input_not_mutated() -> None:
    deltas = {"accuracy": MetricDelta(0.7, 0.6, -0.1, -0.15, -0.05)}
    snapshot = dict(deltas)
    detect_forgetting(perplexity_base=None, perplexity_tuned=None, metric_deltas=deltas)
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
    ],
)
def test_bad_input_rejected(kwargs: dict, message: str) -> None:
    arguments = {"perplexity_base": 10.0, "perplexity_tuned": 10.0, "metric_deltas": {}}
    with pytest.raises(ValueError, match=message):
        detect_forgetting(**{**arguments, **kwargs})
