"""Metric advice: plain-data caveats about which numbers can carry a conclusion.

Rules and their sources:

* Class imbalance (majority class share > 0.6, or smallest/largest gold support < 0.2): accuracy
  then mostly reflects the majority class, so it must be quoted with macro-F1 (weighted-F1 is
  dominated by the majority class as well) - see e.g. Sokolova & Lapalme (2009), "A systematic
  analysis of performance measures for classification tasks".
* Any class whose recall is below ``min_class_recall`` (default 0.5) is flagged, whatever the
  accuracy: a model can look good overall while failing one class.
* BLEU/ROUGE/exact match on open-ended ``chat`` outputs are weak evidence: word overlap with one
  reference correlates poorly with human judgement there (Liu et al., 2016, "How NOT To Evaluate
  Your Dialogue System").
* Evidence from a single metric is never called complete.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from scoring.metrics.classification import ClassificationReport

__all__ = [
    "OVERLAP_METRICS",
    "Advice",
    "EvidenceCompleteness",
    "advise",
    "classification_advice",
    "evidence_completeness",
    "is_imbalanced",
    "overlap_metric_advice",
]

Severity = Literal["info", "warning"]

OVERLAP_METRICS: frozenset[str] = frozenset(
    {"sentence_bleu", "corpus_bleu", "rouge1", "rouge2", "rougeL", "exact_match"}
)
_ACCURACY_NAMES = frozenset({"accuracy", "label_correct"})
# The registry's "classification" corpus metric reports macro-F1 together with accuracy.
_MACRO_F1_NAMES = frozenset({"macro_f1", "classification"})
_MAJORITY_SHARE = 0.6
_MIN_SUPPORT_RATIO = 0.2
_MIN_CLASS_RECALL = 0.5


@dataclass(frozen=True, slots=True)
class Advice:
    """One piece of advice: a stable machine ``code``, a ``severity`` and a human message."""

    code: str
    severity: Severity
    message: str


@dataclass(frozen=True, slots=True)
class EvidenceCompleteness:
    """Whether the evidence may be called complete, with the advice explaining why not."""

    complete: bool
    advice: tuple[Advice, ...]


def is_imbalanced(
    supports: Mapping[str, int],
    *,
    majority_share: float = _MAJORITY_SHARE,
    min_support_ratio: float = _MIN_SUPPORT_RATIO,
) -> bool:
    """True if the largest class holds more than ``majority_share`` of the items, or the
    smallest non-empty class has less than ``min_support_ratio`` times the largest's support.

    Classes with zero support are ignored. Raises ``ValueError`` if no class has support.
    """
    counts = [c for c in supports.values() if c > 0]
    if not counts:
        raise ValueError("no class has any gold support")
    largest = max(counts)
    return largest / sum(counts) > majority_share or min(counts) / largest < min_support_ratio


def classification_advice(
    report: ClassificationReport,
    *,
    quoted_metrics: Collection[str] = ("accuracy",),
    min_class_recall: float = _MIN_CLASS_RECALL,
    majority_share: float = _MAJORITY_SHARE,
    min_support_ratio: float = _MIN_SUPPORT_RATIO,
) -> list[Advice]:
    """Advice for a classification result given the metric names a report will quote.

    Raises ``ValueError`` if ``min_class_recall`` is outside [0, 1].
    """
    if not 0.0 <= min_class_recall <= 1.0:
        raise ValueError("min_class_recall must be within [0, 1]")
    advice: list[Advice] = []
    supports = {s.label: s.support for s in report.per_class}
    quoted = set(quoted_metrics)
    if is_imbalanced(supports, majority_share=majority_share, min_support_ratio=min_support_ratio):
        shares = ", ".join(f"{label}: {count}" for label, count in supports.items())
        if quoted & _ACCURACY_NAMES and not quoted & _MACRO_F1_NAMES:
            advice.append(
                Advice(
                    "imbalanced_accuracy_without_f1",
                    "warning",
                    f"Classes are imbalanced ({shares}); accuracy "
                    f"({report.accuracy:.3f}) mostly reflects the majority class. Quote "
                    f"macro-F1 ({report.macro_f1:.3f}) alongside it.",
                )
            )
        else:
            advice.append(
                Advice("imbalanced_classes", "info", f"Classes are imbalanced ({shares}).")
            )
    for s in report.per_class:
        if s.support == 0:
            advice.append(
                Advice(
                    "class_without_gold",
                    "info",
                    f"Class {s.label!r} has no gold examples; its recall cannot be measured.",
                )
            )
        elif s.recall < min_class_recall:
            advice.append(
                Advice(
                    "low_class_recall",
                    "warning",
                    f"Recall of class {s.label!r} is {s.recall:.3f} (< {min_class_recall:.2f}, "
                    f"support {s.support}) although overall accuracy is {report.accuracy:.3f}.",
                )
            )
    return advice


def overlap_metric_advice(task_type: str, metric_names: Collection[str]) -> list[Advice]:
    """Flag BLEU/ROUGE/exact match used as evidence on open-ended (``chat``) outputs."""
    used = sorted(set(metric_names) & OVERLAP_METRICS)
    if task_type != "chat" or not used:
        return []
    return [
        Advice(
            "overlap_metric_open_ended",
            "warning",
            f"{', '.join(used)} on open-ended chat outputs is weak evidence: many good answers "
            "share few words with the reference. Rely on the human A/B judgements.",
        )
    ]


def evidence_completeness(metric_kinds_present: Collection[str]) -> EvidenceCompleteness:
    """Whether evidence may be called complete: needs at least two distinct sources.

    ``metric_kinds_present`` names the distinct pieces of evidence (metric names such as
    ``"rougeL"``, or e.g. ``"human_preference"``); duplicates and blanks are ignored.
    """
    present = {m.strip() for m in metric_kinds_present if isinstance(m, str) and m.strip()}
    if len(present) >= 2:
        return EvidenceCompleteness(True, ())
    if not present:
        message = "No evidence is present."
        code = "no_evidence"
    else:
        message = (
            f"Only one metric ({next(iter(present))}) is present; a single metric cannot "
            "make the evidence complete. Add a second, independent measure."
        )
        code = "single_metric_evidence"
    return EvidenceCompleteness(False, (Advice(code, "warning", message),))


def advise(
    task_type: str,
    metric_names: Collection[str],
    *,
    classification: ClassificationReport | None = None,
    settings: Mapping[str, Any] | None = None,
) -> list[Advice]:
    """All advice for one study: overlap-metric caveats, classification checks (when a report
    is given, using ``settings['min_class_recall']``) and evidence completeness."""
    conf = settings or {}
    advice = overlap_metric_advice(task_type, metric_names)
    if classification is not None:
        advice += classification_advice(
            classification,
            quoted_metrics=metric_names,
            min_class_recall=float(conf.get("min_class_recall", _MIN_CLASS_RECALL)),
        )
    advice += evidence_completeness(metric_names).advice
    return advice
