"""Metric advice rules."""

from __future__ import annotations

import pytest

from scoring.metrics.advice import (
    Advice,
    advise,
    classification_advice,
    evidence_completeness,
    is_imbalanced,
    overlap_metric_advice,
)
from scoring.metrics.classification import classification_report


def _codes(advice: list[Advice]) -> list[str]:
    return [a.code for a in advice]


@pytest.mark.parametrize(
    ("supports", "expected"),
    [
        ({"a": 61, "b": 39}, True),  # majority share 0.61 > 0.6
        ({"a": 60, "b": 40}, False),
        ({"a": 50, "b": 41, "c": 9}, True),  # 9 / 50 = 0.18 < 0.2
        ({"a": 34, "b": 33, "c": 33}, False),
        ({"a": 5, "b": 5, "c": 0}, False),  # empty classes are ignored here
    ],
)
def test_is_imbalanced(supports: dict[str, int], expected: bool) -> None:
    assert is_imbalanced(supports) is expected


def test_is_imbalanced_needs_support() -> None:
    with pytest.raises(ValueError, match="no class"):
        is_imbalanced({"a": 0})


def _skewed_report():
    # 95 'a' all right, 5 'b' of which only 1 right: accuracy 0.96, recall(b) = 0.2.
    gold = ["a"] * 95 + ["b"] * 5
    pred = ["a"] * 95 + ["b"] + ["a"] * 4
    return classification_report(pred, gold, labels=["a", "b"])


def test_imbalance_with_accuracy_only_warns() -> None:
    report = _skewed_report()
    advice = classification_advice(report, quoted_metrics=["accuracy"])
    (warning,) = [a for a in advice if a.code == "imbalanced_accuracy_without_f1"]
    assert warning.severity == "warning" and "macro-F1" in warning.message


def test_imbalance_with_macro_f1_is_only_info() -> None:
    report = _skewed_report()
    for quoted in (["accuracy", "macro_f1"], ["label_correct", "classification"]):
        codes = _codes(classification_advice(report, quoted_metrics=quoted))
        assert "imbalanced_accuracy_without_f1" not in codes
        assert "imbalanced_classes" in codes


def test_low_recall_class_flagged_despite_high_accuracy() -> None:
    report = _skewed_report()
    assert report.accuracy == pytest.approx(0.96)
    (low,) = [a for a in classification_advice(report) if a.code == "low_class_recall"]
    assert "'b'" in low.message and "0.200" in low.message and "0.960" in low.message
    # Threshold is configurable: at 0.1 nothing is flagged.
    assert "low_class_recall" not in _codes(classification_advice(report, min_class_recall=0.1))
    with pytest.raises(ValueError, match="min_class_recall"):
        classification_advice(report, min_class_recall=1.5)


def test_balanced_good_classifier_gets_no_classification_advice() -> None:
    report = classification_report(["a", "b", "a", "b"], ["a", "b", "a", "b"])
    assert classification_advice(report) == []


def test_class_without_gold_is_noted() -> None:
    report = classification_report(["a", "b"], ["a", "b"], labels=["a", "b", "c"])
    assert "class_without_gold" in _codes(classification_advice(report))


def test_overlap_metrics_on_chat_are_weak_evidence() -> None:
    (advice,) = overlap_metric_advice("chat", ["rougeL", "sentence_bleu", "human_preference"])
    assert advice.code == "overlap_metric_open_ended" and advice.severity == "warning"
    assert "rougeL" in advice.message and "sentence_bleu" in advice.message
    assert overlap_metric_advice("generation", ["rougeL"]) == []
    assert overlap_metric_advice("chat", ["human_preference"]) == []


@pytest.mark.parametrize(
    ("present", "complete", "code"),
    [
        ([], False, "no_evidence"),
        (["rougeL"], False, "single_metric_evidence"),
        (["rougeL", "rougeL", " "], False, "single_metric_evidence"),
        (["rougeL", "human_preference"], True, None),
    ],
)
def test_evidence_completeness(present: list[str], complete: bool, code: str | None) -> None:
    result = evidence_completeness(present)
    assert result.complete is complete
    assert [a.code for a in result.advice] == ([code] if code else [])


def test_advise_combines_rules_and_reads_settings() -> None:
    report = _skewed_report()
    codes = _codes(advise("classification", ["accuracy"], classification=report))
    assert codes == [
        "imbalanced_accuracy_without_f1",
        "low_class_recall",
        "single_metric_evidence",
    ]
    relaxed = advise(
        "classification",
        ["accuracy", "macro_f1"],
        classification=report,
        settings={"min_class_recall": 0.1},
    )
    assert _codes(relaxed) == ["imbalanced_classes"]
    assert _codes(advise("chat", ["rouge1"])) == [
        "overlap_metric_open_ended",
        "single_metric_evidence",
    ]
