"""Classification metrics computed with scikit-learn.

Accuracy, macro-F1, weighted-F1, per-class precision/recall/F1/support and the confusion matrix
(Pedregosa et al., 2011; definitions as in ``sklearn.metrics``). Predicted labels are model
outputs, so they are normalised (``str.strip`` then ``str.casefold``) before being matched to the
study's label set; anything that still is not a label becomes the pseudo-class ``"__invalid__"``,
which always counts as wrong.

Choices worth knowing:

* Macro-F1 averages over the classes of the label set that occur in the gold labels or in the
  (valid) predictions - scikit-learn's own default selection - so a label nobody used does not
  add a spurious 0; ``"__invalid__"`` is never averaged as a class (invalid outputs already cost
  recall of the true class).
* Weighted-F1 weights each class by its gold support.
* The confusion matrix has rows = gold label (label-set order) and columns = predicted label in
  the same order followed by ``"__invalid__"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from scoring.metrics.registry import CorpusValue, register

__all__ = [
    "INVALID_LABEL",
    "ClassStats",
    "ClassificationReport",
    "classification_report",
    "label_correct",
    "label_lookup",
    "map_prediction",
    "normalize_label",
]

INVALID_LABEL = "__invalid__"


def normalize_label(text: str) -> str:
    """Strip surrounding whitespace and case-fold (``" Positive\\n"`` -> ``"positive"``)."""
    return text.strip().casefold()


def label_lookup(labels: Sequence[str]) -> dict[str, str]:
    """Map normalised label -> canonical label for a label set.

    Raises ``ValueError`` if the set is empty, contains ``"__invalid__"`` or two labels that
    normalise to the same string.
    """
    if isinstance(labels, str):
        raise ValueError("labels must be a sequence of label strings, not one string")
    if len(labels) == 0:
        raise ValueError("label set is empty")
    lookup: dict[str, str] = {}
    for label in labels:
        key = normalize_label(label)
        if not key:
            raise ValueError("label set contains an empty label")
        if key == INVALID_LABEL:
            raise ValueError(f"{INVALID_LABEL!r} is reserved and cannot be a label")
        if key in lookup and lookup[key] != label:
            raise ValueError(f"labels {lookup[key]!r} and {label!r} are equal after normalisation")
        lookup.setdefault(key, label)
    return lookup


def map_prediction(output: str, lookup: Mapping[str, str]) -> str:
    """The canonical label ``output`` names, or ``"__invalid__"``."""
    return lookup.get(normalize_label(output), INVALID_LABEL)


def label_correct(output: str, gold: str) -> float:
    """1.0 if the normalised output equals the normalised gold label, else 0.0."""
    return 1.0 if normalize_label(output) == normalize_label(gold) else 0.0


@dataclass(frozen=True, slots=True)
class ClassStats:
    """Per-class precision, recall, F1 (0-1) and gold support (count)."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class ClassificationReport:
    """Corpus classification metrics; see the module docstring for conventions."""

    labels: tuple[str, ...]
    accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: tuple[ClassStats, ...]
    confusion_rows: tuple[str, ...]
    confusion_columns: tuple[str, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]
    n_items: int
    n_invalid: int

    def stats(self, label: str) -> ClassStats:
        """The :class:`ClassStats` of ``label``; raises ``KeyError`` if not in the label set."""
        for stats in self.per_class:
            if stats.label == label:
                return stats
        raise KeyError(label)

    def as_values(self) -> dict[str, float]:
        """Flat ``{name: float}`` view (per-class keys look like ``"f1[label]"``)."""
        values = {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "weighted_f1": self.weighted_f1,
            "invalid_rate": self.n_invalid / self.n_items,
            "n_items": float(self.n_items),
        }
        for s in self.per_class:
            values[f"precision[{s.label}]"] = s.precision
            values[f"recall[{s.label}]"] = s.recall
            values[f"f1[{s.label}]"] = s.f1
            values[f"support[{s.label}]"] = float(s.support)
        return values


def classification_report(
    predictions: Sequence[str],
    gold_labels: Sequence[str],
    *,
    labels: Sequence[str] | None = None,
) -> ClassificationReport:
    """Accuracy, macro/weighted F1, per-class stats and confusion matrix.

    ``predictions`` are raw model outputs; ``gold_labels`` must belong to ``labels`` (after
    normalisation). Without ``labels`` the label set is the gold labels' distinct values, sorted.
    Raises ``ValueError`` on empty or misaligned input and on gold labels outside the label set.
    """
    if len(predictions) == 0:
        raise ValueError("no predictions to score")
    if len(predictions) != len(gold_labels):
        raise ValueError(f"{len(predictions)} predictions but {len(gold_labels)} gold labels")
    if labels is None:
        labels = sorted({normalize_label(g): g for g in reversed(gold_labels)}.values())
    lookup = label_lookup(labels)
    order = list(dict.fromkeys(lookup.values()))
    gold: list[str] = []
    for i, g in enumerate(gold_labels):
        canonical = lookup.get(normalize_label(g))
        if canonical is None:
            raise ValueError(f"gold label {g!r} (item {i}) is not in the label set {order}")
        gold.append(canonical)
    pred = [map_prediction(p, lookup) for p in predictions]

    y_true = np.asarray(gold, dtype=object)
    y_pred = np.asarray(pred, dtype=object)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=order, zero_division=0.0
    )
    used = {*gold, *pred}
    present = [k for k, label in enumerate(order) if label in used]
    macro_f1 = float(np.mean(f1[present]))
    weighted_f1 = float(np.average(f1, weights=support)) if support.sum() else 0.0
    columns = [*order, INVALID_LABEL]
    # sklearn's matrix is square over `columns`; the "__invalid__" gold row is always empty.
    matrix = confusion_matrix(y_true, y_pred, labels=columns)[: len(order)]
    n_invalid = sum(1 for p in pred if p == INVALID_LABEL)
    return ClassificationReport(
        labels=tuple(order),
        accuracy=float(np.mean(y_true == y_pred)),
        macro_f1=macro_f1,
        weighted_f1=weighted_f1,
        per_class=tuple(
            ClassStats(label, float(p), float(r), float(f), int(s))
            for label, p, r, f, s in zip(order, precision, recall, f1, support, strict=True)
        ),
        confusion_rows=tuple(order),
        confusion_columns=tuple(columns),
        confusion_matrix=tuple(tuple(int(c) for c in row) for row in matrix),
        n_items=len(pred),
        n_invalid=n_invalid,
    )


# --------------------------------------------------------------------------- registry adapters


@register(
    "label_correct",
    version="1",
    task_types=("classification",),
    kind="task",
    level="item",
    needs=("label",),
)
def _label_correct_item(
    output: str,
    *,
    reference: str | None,
    label: str | None,
    metadata: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> float:
    """1/0: normalised output equals the gold label."""
    assert label is not None  # guaranteed by needs=("label",)
    return label_correct(output, label)


@register(
    "classification",
    version="1",
    task_types=("classification",),
    kind="task",
    level="corpus",
    needs=("label",),
)
def _classification_corpus(
    outputs: Sequence[str],
    *,
    references: Sequence[str | None],
    labels: Sequence[str | None],
    metadatas: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
) -> CorpusValue:
    """Accuracy, macro/weighted F1, per-class stats; confusion matrix in detail."""
    pairs = [(o, g) for o, g in zip(outputs, labels, strict=True) if g is not None]
    label_set = settings.get("labels")
    warnings: list[str] = []
    if label_set is None:
        warnings.append("settings['labels'] not set; label set inferred from the gold labels")
    if len(pairs) < len(outputs):
        warnings.append(f"{len(outputs) - len(pairs)} items without gold label left out")
    report = classification_report([o for o, _ in pairs], [g for _, g in pairs], labels=label_set)
    detail = {
        "labels": list(report.labels),
        "confusion_rows": list(report.confusion_rows),
        "confusion_columns": list(report.confusion_columns),
        "confusion_matrix": [list(row) for row in report.confusion_matrix],
    }
    return CorpusValue(report.as_values(), detail, tuple(warnings))
