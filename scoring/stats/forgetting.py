"""Catastrophic forgetting on a general hold-out set: base vs tuned model.

Recipe: fine-tuning can erode a model's general abilities ("catastrophic forgetting",
McCloskey & Cohen 1989; Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural
networks"; Luo et al. 2023, "An Empirical Study of Catastrophic Forgetting in Large Language
Models During Continual Fine-tuning"). It is measured by scoring both models on general text
that the fine-tuning never saw, with two kinds of evidence:

* **Perplexity** of each model on the hold-out text. The tuned model is flagged when its
  perplexity exceeds the base model's by more than ``max_perplexity_increase``, relative:
  ``perplexity_tuned / perplexity_base - 1 > max_perplexity_increase`` (0.10 = 10 % higher).
* **Metric deltas** (``delta = tuned - base`` with a confidence interval, e.g. a paired
  bootstrap over hold-out items). A higher-is-better metric fails when the whole interval lies
  below ``-max_metric_drop``, i.e. ``ci_high < -max_metric_drop``: the tuned model is worse by
  more than the margin with confidence, in the spirit of a non-inferiority test (the margin is
  in the metric's own units). A lower-is-better metric is mirrored: it fails when
  ``ci_low > max_metric_drop``. A point estimate that is worse but whose interval reaches the
  margin is not flagged: it is not significant evidence of forgetting.
* Both limits are strict: a change of exactly the limit passes (with a 1e-12 slack for
  floating-point rounding).

A perplexity given as ``None`` or NaN counts as not measured. A metric whose interval bounds are
not finite (e.g. too few items to resample) cannot be judged: its row is marked
``evaluated=False`` and it neither passes nor fails the check. With neither a perplexity pair
nor a judgeable metric the report is ``evaluated=False`` with the reason "no general hold-out
evidence" (and is never flagged): absence of evidence is not reported as a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "NO_EVIDENCE",
    "ForgettingReport",
    "MetricCheck",
    "MetricDelta",
    "detect_forgetting",
]

NO_EVIDENCE = "no general hold-out evidence"
# Slack on both limits so that a change of exactly the limit (10 -> 11 at 10 %) passes despite
# floating-point rounding (11 / 10 - 1 = 0.10000000000000009).
_TOLERANCE = 1e-12


@dataclass(frozen=True)
class MetricDelta:
    """A metric on the general hold-out set for both models.

    Attributes:
        base, tuned: the metric's value for each model (metric units).
        delta: ``tuned - base``.
        ci_low, ci_high: confidence interval of ``delta`` (``nan`` when unavailable).
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
    """Forgetting check of one metric.

    Attributes:
        name: the metric's name (the key in ``metric_deltas``).
        base, tuned, delta, ci_low, ci_high, lower_is_better: as given.
        worse_bound: the interval bound nearest "no change" on the worse side, mirrored so that
            negative is worse: ``ci_high`` for higher-is-better metrics, ``-ci_low`` for
            lower-is-better ones. Fails when below ``-max_metric_drop``.
        evaluated: ``False`` when the interval is not finite, so nothing could be judged.
        passed: ``True`` unless the metric is significantly worse by more than the margin (also
            ``True`` when not evaluated; read it together with ``evaluated``).
        reason: one line explaining the outcome.
    """

    name: str
    base: float
    tuned: float
    delta: float
    ci_low: float
    ci_high: float
    lower_is_better: bool
    worse_bound: float
    evaluated: bool
    passed: bool
    reason: str


@dataclass(frozen=True)
class ForgettingReport:
    """Catastrophic-forgetting verdict on the general hold-out set.

    Attributes:
        perplexity_base, perplexity_tuned: as given (``None`` when unavailable or NaN).
        perplexity_relative_change: ``tuned / base - 1`` (``None`` unless both are given).
        flagged: the perplexity rose by more than the limit or some metric failed.
        reasons: one line per failed criterion; ``(NO_EVIDENCE,)`` when not evaluated.
        evaluated: ``False`` when neither perplexity nor any metric could be compared.
        metrics: one row per metric, in the mapping's order.
        notes: informational lines (e.g. a perplexity given for one model only).
        max_perplexity_increase, max_metric_drop: the thresholds used.
    """

    perplexity_base: float | None
    perplexity_tuned: float | None
    perplexity_relative_change: float | None
    flagged: bool
    reasons: tuple[str, ...]
    evaluated: bool
    metrics: tuple[MetricCheck, ...]
    notes: tuple[str, ...]
    max_perplexity_increase: float
    max_metric_drop: float


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


def _metric_check(name: str, metric: MetricDelta, max_metric_drop: float) -> MetricCheck:
    where = f"metric_deltas[{name!r}]"
    if not isinstance(metric, MetricDelta):
        raise ValueError(f"{where}: expected a MetricDelta, got {type(metric).__name__}")
    ci_low, ci_high = float(metric.ci_low), float(metric.ci_high)
    if ci_low > ci_high:
        raise ValueError(f"{where}: ci_low {ci_low:g} is above ci_high {ci_high:g}")
    worse_bound = -ci_low if metric.lower_is_better else ci_high
    direction = "lower" if metric.lower_is_better else "higher"
    interval = f"delta {metric.delta:+.4g}, CI [{ci_low:.4g}, {ci_high:.4g}], {direction} is better"
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return MetricCheck(
            name=name,
            base=metric.base,
            tuned=metric.tuned,
            delta=metric.delta,
            ci_low=ci_low,
            ci_high=ci_high,
            lower_is_better=metric.lower_is_better,
            worse_bound=worse_bound,
            evaluated=False,
            passed=True,
            reason=f"{name}: no finite confidence interval, not judged ({interval})",
        )
    failed = worse_bound < -max_metric_drop - _TOLERANCE
    if failed:
        reason = (
            f"{name}: significantly worse by more than {max_metric_drop:g} on the general "
            f"hold-out set ({interval})"
        )
    else:
        reason = f"{name}: not significantly worse by more than {max_metric_drop:g} ({interval})"
    return MetricCheck(
        name=name,
        base=metric.base,
        tuned=metric.tuned,
        delta=metric.delta,
        ci_low=ci_low,
        ci_high=ci_high,
        lower_is_better=metric.lower_is_better,
        worse_bound=worse_bound,
        evaluated=True,
        passed=not failed,
        reason=reason,
    )


def detect_forgetting(
    *,
    perplexity_base: float | None,
    perplexity_tuned: float | None,
    metric_deltas: Mapping[str, MetricDelta],
    max_perplexity_increase: float = 0.10,
    max_metric_drop: float = 0.02,
) -> ForgettingReport:
    """Flag catastrophic forgetting from general hold-out perplexity and metric deltas.

    Args:
        perplexity_base, perplexity_tuned: each model's perplexity on the general hold-out text
            (``None`` or NaN when not measured, NaN being what :mod:`scoring.lm.perplexity`
            reports when nothing was scored). The tuned one may be ``inf`` (a diverged model).
        metric_deltas: per metric name, the base and tuned values and the ``tuned - base``
            delta with its confidence interval. Not mutated.
        max_perplexity_increase: largest tolerated relative perplexity rise (0.10 = 10 %).
        max_metric_drop: largest tolerated drop of a metric, in the metric's units.

    Returns:
        A :class:`ForgettingReport`; see the module docstring for the rules.

    Raises:
        ValueError: a perplexity that is neither ``None``, NaN nor a number > 0 (or an infinite
            base perplexity), a negative or non-finite threshold, a ``metric_deltas`` value that
            is not a :class:`MetricDelta`, or one whose ``ci_low`` is above its ``ci_high``.
    """
    base = _check_perplexity("perplexity_base", perplexity_base)
    tuned = _check_perplexity("perplexity_tuned", perplexity_tuned)
    max_perplexity_increase = _check_threshold("max_perplexity_increase", max_perplexity_increase)
    max_metric_drop = _check_threshold("max_metric_drop", max_metric_drop)
    checks = tuple(
        _metric_check(str(name), metric, max_metric_drop) for name, metric in metric_deltas.items()
    )

    reasons: list[str] = []
    notes: list[str] = []
    relative_change: float | None = None
    if base is not None and tuned is not None:
        relative_change = tuned / base - 1.0
        if relative_change > max_perplexity_increase + _TOLERANCE:
            reasons.append(
                f"hold-out perplexity rose {relative_change:.1%} (base {base:.4g} -> tuned "
                f"{tuned:.4g}), above the {max_perplexity_increase:.1%} limit"
            )
    elif base is not None or tuned is not None:
        missing = "perplexity_tuned" if tuned is None else "perplexity_base"
        notes.append(f"{missing} missing (None or NaN): perplexity not compared")

    reasons.extend(check.reason for check in checks if not check.passed)
    notes.extend(check.reason for check in checks if not check.evaluated)
    evaluated = relative_change is not None or any(check.evaluated for check in checks)
    flagged = bool(reasons)  # only failed criteria so far
    if not evaluated:
        reasons = [NO_EVIDENCE]
    return ForgettingReport(
        perplexity_base=base,
        perplexity_tuned=tuned,
        perplexity_relative_change=relative_change,
        flagged=flagged,
        reasons=tuple(reasons),
        evaluated=evaluated,
        metrics=checks,
        notes=tuple(notes),
        max_perplexity_increase=max_perplexity_increase,
        max_metric_drop=max_metric_drop,
    )
