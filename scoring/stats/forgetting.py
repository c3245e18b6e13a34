"""Catastrophic forgetting on a general hold-out set, tested as non-inferiority: base vs tuned.

Recipe: fine-tuning can erode a model's general abilities ("catastrophic forgetting",
McCloskey & Cohen 1989; Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural
networks"; Luo et al. 2023, "An Empirical Study of Catastrophic Forgetting in Large Language
Models During Continual Fine-tuning"). It is measured by scoring both models on general text
that the fine-tuning never saw. The claim a release needs is "the tuned model is not worse by
more than a margin", so the burden of proof is on the tuned model: a non-inferiority test
(Wellek 2010, "Testing Statistical Hypotheses of Equivalence and Noninferiority", ch. 2;
Piaggio et al. 2012, CONSORT extension for non-inferiority trials, whose figure 1 reads a
confidence interval against the margin exactly as here).

* **Metric deltas** (``delta = tuned - base`` with a two-sided confidence interval, e.g. a
  paired bootstrap over hold-out items). A higher-is-better metric passes only when the *whole*
  interval lies above ``-max_metric_drop``: ``ci_low > -max_metric_drop``. A lower-is-better
  metric is mirrored: ``ci_high < max_metric_drop``. With a 95 % interval this is a one-sided
  test at 2.5 %. Everything else fails as "not shown to be non-inferior":

  - the interval reaches beyond the margin (``not_shown``): a point estimate near zero does not
    help when the interval also allows a large drop;
  - the whole interval lies beyond the margin (``inferior``): worse by more than the margin;
  - the interval is at least as wide as the margin on each side, ``(ci_high - ci_low) / 2 >=
    max_metric_drop``, and does not pass (``too_imprecise``): even a tuned model equal to the
    base could not be shown non-inferior with this hold-out set, which is too small;
  - the interval is missing or not finite (``no_interval``), e.g. too few items to resample.

  Absence of evidence is not evidence of absence: a metric without an interval fails.

  The margin is in the metric's own units, so one number cannot serve metrics on different
  scales (0.02 is two points of accuracy on 0-1 but nothing on BLEU's 0-100, and a margin
  raised for BLEU would wave any accuracy drop through): ``metric_margins`` gives a margin per
  metric name, ``max_metric_drop`` the margin of every other metric.
* **Perplexity** of each model on the hold-out text, as the relative increase
  ``perplexity_tuned / perplexity_base - 1``. With a confidence interval of that increase
  (``perplexity_increase_ci``) it passes only when the whole interval lies below
  ``max_perplexity_increase``, read like the metrics. Without one it is compared on the point
  estimates (``increase > max_perplexity_increase`` fails), as a documented weaker check.
* Limits are strict with a 1e-12 slack for floating-point rounding: an interval bound exactly
  at the margin fails (it is not *inside* the margin), a point increase exactly at the limit
  passes (11 / 10 - 1 = 0.10000000000000009 must not fail a 10 % limit).

A perplexity given as ``None`` or NaN counts as not measured. With neither a perplexity pair
nor a metric the report is ``evaluated=False`` with the reason "no general hold-out evidence"
(and is not flagged; a release gate must treat it as not passed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "INFERIOR",
    "NON_INFERIOR",
    "NOT_SHOWN",
    "NO_EVIDENCE",
    "NO_INTERVAL",
    "TOO_IMPRECISE",
    "ForgettingReport",
    "MetricCheck",
    "MetricDelta",
    "detect_forgetting",
]

NO_EVIDENCE = "no general hold-out evidence"
NOT_SHOWN_PHRASE = "not shown to be non-inferior"

# Outcomes of one non-inferiority check.
NON_INFERIOR = "non_inferior"
NOT_SHOWN = "not_shown"
INFERIOR = "inferior"
TOO_IMPRECISE = "too_imprecise"
NO_INTERVAL = "no_interval"

_TOLERANCE = 1e-12


@dataclass(frozen=True)
class MetricDelta:
    """A metric on the general hold-out set for both models.

    Attributes:
        base, tuned: the metric's value for each model (metric units).
        delta: ``tuned - base``.
        ci_low, ci_high: two-sided confidence interval of ``delta`` (``nan`` when unavailable).
        lower_is_better: ``True`` for metrics such as error rates, where a positive delta is
            worse.
    """

    base: float
    tuned: float
    delta: float
    ci_low: float
    ci_high: float
    lower_is_better: bool = False


@dataclass(frozen=True)
class MetricCheck:
    """Non-inferiority check of one metric.

    Attributes:
        name: the metric's name (the key in ``metric_deltas``).
        base, tuned, delta, ci_low, ci_high, lower_is_better: as given.
        worst_case: the interval bound on the worse side, mirrored so that negative is worse:
            ``ci_low`` for higher-is-better metrics, ``-ci_high`` for lower-is-better ones
            (``nan`` without an interval). Passes when above ``-margin``.
        half_width: ``(ci_high - ci_low) / 2`` (``nan`` without an interval).
        outcome: :data:`NON_INFERIOR`, :data:`NOT_SHOWN`, :data:`INFERIOR`,
            :data:`TOO_IMPRECISE` or :data:`NO_INTERVAL` (see the module docstring).
        evaluated: an interval was available.
        passed: ``outcome == NON_INFERIOR``.
        reason: one line explaining the outcome.
        margin: the margin this metric was read against, in its units.
    """

    name: str
    base: float
    tuned: float
    delta: float
    ci_low: float
    ci_high: float
    lower_is_better: bool
    worst_case: float
    half_width: float
    outcome: str
    evaluated: bool
    passed: bool
    reason: str
    margin: float


@dataclass(frozen=True)
class ForgettingReport:
    """Catastrophic-forgetting verdict on the general hold-out set.

    Attributes:
        perplexity_base, perplexity_tuned: as given (``None`` when unavailable or NaN).
        perplexity_relative_change: ``tuned / base - 1`` (``None`` unless both are given).
        perplexity_ci_low, perplexity_ci_high: the interval of that change, when given.
        perplexity_outcome: ``None`` (not compared), :data:`NON_INFERIOR`, :data:`NOT_SHOWN`,
            :data:`INFERIOR`, :data:`TOO_IMPRECISE` (with an interval) or ``"point_pass"`` /
            ``"point_fail"`` (point estimates only).
        flagged: some check failed (forgetting, or non-inferiority not shown).
        reasons: one line per failed check; ``(NO_EVIDENCE,)`` when not evaluated.
        evaluated: ``False`` when neither perplexity nor any metric could be compared.
        metrics: one row per metric, in the mapping's order.
        notes: informational lines (e.g. a perplexity given for one model only).
        max_perplexity_increase, max_metric_drop: the margins used (``max_metric_drop`` for
            the metrics without a margin of their own).
        metric_margins: the per-metric margins given.
    """

    perplexity_base: float | None
    perplexity_tuned: float | None
    perplexity_relative_change: float | None
    perplexity_ci_low: float | None
    perplexity_ci_high: float | None
    perplexity_outcome: str | None
    flagged: bool
    reasons: tuple[str, ...]
    evaluated: bool
    metrics: tuple[MetricCheck, ...]
    notes: tuple[str, ...]
    max_perplexity_increase: float
    max_metric_drop: float
    metric_margins: Mapping[str, float]


def _check_perplexity(name: str, value: float | None) -> float | None:
    """The perplexity as a float; ``None`` when not measured (``None`` or NaN)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None  # scoring.lm.perplexity's "nothing scored"
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name}: must be a number > 0 or None, got {value!r}")
    if name == "perplexity_base" and math.isinf(value):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return float(value)


def _check_threshold(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not 0 <= value < math.inf:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


def _non_inferiority(worst_case: float, best_case: float, half_width: float, margin: float) -> str:
    """Outcome of an interval (mirrored so negative is worse) against ``-margin``."""
    if worst_case > -margin + _TOLERANCE:
        return NON_INFERIOR
    if best_case < -margin - _TOLERANCE:
        return INFERIOR
    if half_width >= margin - _TOLERANCE:
        return TOO_IMPRECISE
    return NOT_SHOWN


def _explain(outcome: str, half_width: float, margin: str) -> str:
    if outcome == INFERIOR:
        return f"{NOT_SHOWN_PHRASE}: the whole interval is worse than the margin {margin}"
    if outcome == TOO_IMPRECISE:
        return (
            f"{NOT_SHOWN_PHRASE}: the interval's half-width {half_width:.4g} is at least the "
            f"margin {margin}, so even no change could not be shown non-inferior: the hold-out "
            "set is too small"
        )
    return f"{NOT_SHOWN_PHRASE}: the interval reaches beyond the margin {margin}"


def _metric_check(name: str, metric: MetricDelta, margin: float) -> MetricCheck:
    where = f"metric_deltas[{name!r}]"
    if not isinstance(metric, MetricDelta):
        raise ValueError(f"{where}: expected a MetricDelta, got {type(metric).__name__}")
    ci_low, ci_high = float(metric.ci_low), float(metric.ci_high)
    if ci_low > ci_high:
        raise ValueError(f"{where}: ci_low {ci_low:g} is above ci_high {ci_high:g}")
    direction = "lower" if metric.lower_is_better else "higher"
    interval = f"delta {metric.delta:+.4g}, CI [{ci_low:.4g}, {ci_high:.4g}], {direction} is better"
    common = {
        "name": name,
        "base": metric.base,
        "tuned": metric.tuned,
        "delta": metric.delta,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "lower_is_better": metric.lower_is_better,
        "margin": margin,
    }
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return MetricCheck(
            **common,
            worst_case=math.nan,
            half_width=math.nan,
            outcome=NO_INTERVAL,
            evaluated=False,
            passed=False,
            reason=(
                f"{name}: {NOT_SHOWN_PHRASE}: no confidence interval (too few hold-out items "
                f"to resample?) ({interval})"
            ),
        )
    worst, best = (-ci_high, -ci_low) if metric.lower_is_better else (ci_low, ci_high)
    half_width = (ci_high - ci_low) / 2.0
    outcome = _non_inferiority(worst, best, half_width, margin)
    if outcome == NON_INFERIOR:
        reason = (
            f"{name}: non-inferior: the whole interval is within the margin {margin:g} ({interval})"
        )
    else:
        reason = f"{name}: {_explain(outcome, half_width, f'{margin:g}')} ({interval})"
    return MetricCheck(
        **common,
        worst_case=worst,
        half_width=half_width,
        outcome=outcome,
        evaluated=True,
        passed=outcome == NON_INFERIOR,
        reason=reason,
    )


def _check_interval(value: tuple[float, float] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"perplexity_increase_ci: expected (low, high) or None, got {value!r}"
        ) from exc
    if math.isnan(low) or math.isnan(high):
        return None  # a bootstrap that could not resample
    if low > high:
        raise ValueError(f"perplexity_increase_ci: low {low:g} is above high {high:g}")
    if low < -1.0:
        raise ValueError(f"perplexity_increase_ci: a relative change is >= -1, got {low:g}")
    return low, high


def detect_forgetting(
    *,
    perplexity_base: float | None,
    perplexity_tuned: float | None,
    metric_deltas: Mapping[str, MetricDelta],
    perplexity_increase_ci: tuple[float, float] | None = None,
    max_perplexity_increase: float = 0.10,
    max_metric_drop: float = 0.02,
    metric_margins: Mapping[str, float] | None = None,
) -> ForgettingReport:
    """Test the tuned model for non-inferiority to the base on the general hold-out set.

    Args:
        perplexity_base, perplexity_tuned: each model's perplexity on the general hold-out text
            (``None`` or NaN when not measured, NaN being what :mod:`scoring.lm.perplexity`
            reports when nothing was scored). The tuned one may be ``inf`` (a diverged model).
        metric_deltas: per metric name, the base and tuned values and the ``tuned - base``
            delta with its confidence interval. Not mutated.
        perplexity_increase_ci: confidence interval of ``perplexity_tuned / perplexity_base -
            1`` (e.g. a paired bootstrap over hold-out documents); ``None`` (or NaN bounds)
            when not available, and the perplexity is then compared on point estimates.
        max_perplexity_increase: the perplexity margin, a relative increase (0.10 = 10 %).
        max_metric_drop: the metric margin, in the metric's units, for every metric without a
            margin in ``metric_margins``.
        metric_margins: per metric name, its own margin in its units (e.g. 2.0 for BLEU on
            0-100 beside 0.02 for accuracy on 0-1). Names without a metric are ignored.

    Returns:
        A :class:`ForgettingReport`; see the module docstring for the rules.

    Raises:
        ValueError: a perplexity that is neither ``None``, NaN nor a number > 0 (or an infinite
            base perplexity), a negative or non-finite margin, a ``metric_deltas`` value that
            is not a :class:`MetricDelta`, an interval whose low bound is above its high bound,
            a per-metric margin that is not a finite number >= 0,
            or a perplexity interval that is not a pair of numbers or goes below -1.
    """
    base = _check_perplexity("perplexity_base", perplexity_base)
    tuned = _check_perplexity("perplexity_tuned", perplexity_tuned)
    max_perplexity_increase = _check_threshold("max_perplexity_increase", max_perplexity_increase)
    max_metric_drop = _check_threshold("max_metric_drop", max_metric_drop)
    margins = {
        str(name): _check_threshold(f"metric_margins[{name!r}]", margin)
        for name, margin in (metric_margins or {}).items()
    }
    interval = _check_interval(perplexity_increase_ci)
    checks = tuple(
        _metric_check(str(name), metric, margins.get(str(name), max_metric_drop))
        for name, metric in metric_deltas.items()
    )

    reasons: list[str] = []
    notes: list[str] = []
    relative_change: float | None = None
    outcome: str | None = None
    if base is not None and tuned is not None:
        relative_change = tuned / base - 1.0
        limit = f"{max_perplexity_increase:.1%}"
        if interval is not None:
            low, high = interval
            # Mirrored so that negative is worse, like a higher-is-better metric.
            outcome = _non_inferiority(-high, -low, (high - low) / 2.0, max_perplexity_increase)
            if outcome != NON_INFERIOR:
                reasons.append(
                    f"hold-out perplexity: {_explain(outcome, (high - low) / 2.0, limit)} "
                    f"(relative increase {relative_change:+.1%}, CI [{low:+.1%}, {high:+.1%}], "
                    f"base {base:.4g} -> tuned {tuned:.4g})"
                )
        else:
            failed = relative_change > max_perplexity_increase + _TOLERANCE
            outcome = "point_fail" if failed else "point_pass"
            notes.append("hold-out perplexity compared on point estimates (no interval given)")
            if failed:
                reasons.append(
                    f"hold-out perplexity rose {relative_change:.1%} (base {base:.4g} -> tuned "
                    f"{tuned:.4g}), above the {limit} limit"
                )
    elif base is not None or tuned is not None:
        missing = "perplexity_tuned" if tuned is None else "perplexity_base"
        notes.append(f"{missing} missing (None or NaN): perplexity not compared")

    reasons.extend(check.reason for check in checks if not check.passed)
    evaluated = relative_change is not None or bool(checks)
    flagged = bool(reasons)  # only failed checks so far
    if not evaluated:
        reasons = [NO_EVIDENCE]
    return ForgettingReport(
        perplexity_base=base,
        perplexity_tuned=tuned,
        perplexity_relative_change=relative_change,
        perplexity_ci_low=interval[0] if interval and relative_change is not None else None,
        perplexity_ci_high=interval[1] if interval and relative_change is not None else None,
        perplexity_outcome=outcome,
        flagged=flagged,
        reasons=tuple(reasons),
        evaluated=evaluated,
        metrics=checks,
        notes=tuple(notes),
        max_perplexity_increase=max_perplexity_increase,
        max_metric_drop=max_metric_drop,
        metric_margins=margins,
    )
