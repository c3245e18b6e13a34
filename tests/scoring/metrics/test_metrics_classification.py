"""Classification metrics checked against hand computation."""

from __future__ import annotations

import pytest

from scoring.metrics.classification import (
    INVALID_LABEL,
    classification_report,
    label_correct,
    label_lookup,
    map_prediction,
)
from scoring.metrics.registry import score_outputs

LABELS = ["cat", "dog", "bird"]
GOLD = ["cat", "cat", "cat", "dog", "dog", "bird"]
# After strip + casefold: cat, cat, dog, dog, __invalid__, bird
PRED = [" Cat", "CAT\n", "dog", "DOG", "fish", "bird"]


def test_report_matches_hand_computation() -> None:
    report = classification_report(PRED, GOLD, labels=LABELS)
    assert report.labels == ("cat", "dog", "bird")
    assert report.accuracy == pytest.approx(4 / 6)
    cat, dog, bird = report.per_class
    # cat: 2 TP, predicted twice, 3 gold -> P 1, R 2/3, F1 0.8
    assert (cat.precision, cat.recall, cat.f1, cat.support) == pytest.approx((1, 2 / 3, 0.8, 3))
    # dog: 1 TP of 2 predicted, 2 gold (one dog answered "fish") -> P 0.5, R 0.5, F1 0.5
    assert (dog.precision, dog.recall, dog.f1, dog.support) == pytest.approx((0.5, 0.5, 0.5, 2))
    assert (bird.precision, bird.recall, bird.f1, bird.support) == pytest.approx((1, 1, 1, 1))
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    assert report.weighted_f1 == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 1.0) / 6)
    assert report.confusion_rows == ("cat", "dog", "bird")
    assert report.confusion_columns == ("cat", "dog", "bird", INVALID_LABEL)
    assert report.confusion_matrix == (
        (2, 1, 0, 0),
        (0, 1, 0, 1),
        (0, 0, 1, 0),
    )
    assert (report.n_items, report.n_invalid) == (6, 1)


def test_invalid_outputs_count_as_wrong_not_as_a_class() -> None:
    # All invalid: accuracy 0, and "__invalid__" does not earn a class in the macro average.
    report = classification_report(["maybe", "unsure"], ["yes", "no"], labels=["yes", "no"])
    assert report.accuracy == 0.0
    assert report.macro_f1 == 0.0
    assert report.n_invalid == 2
    assert [s.label for s in report.per_class] == ["yes", "no"]


def test_macro_f1_ignores_labels_nobody_used() -> None:
    # "bird" is in the label set but neither gold nor predicted: it must not add a 0 to the mean.
    report = classification_report(["cat", "dog"], ["cat", "dog"], labels=LABELS)
    assert report.macro_f1 == 1.0
    assert report.stats("bird").support == 0


def test_label_set_inferred_from_gold_when_missing() -> None:
    report = classification_report(["b", "A"], ["B", "a"])
    assert report.labels == ("B", "a")  # canonical spelling from gold, sorted
    assert report.accuracy == 1.0


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([], "empty"),
        (["Yes", "yes "], "equal after normalisation"),
        (["yes", "__INVALID__"], "reserved"),
        (["yes", "  "], "empty label"),
    ],
)
def test_bad_label_sets_raise(labels: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        label_lookup(labels)


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="not in the label set"):
        classification_report(["cat"], ["horse"], labels=LABELS)
    with pytest.raises(ValueError, match="2 predictions but 1 gold"):
        classification_report(["cat", "dog"], ["cat"], labels=LABELS)
    with pytest.raises(ValueError, match="no predictions"):
        classification_report([], [], labels=LABELS)


def test_label_correct_and_mapping_normalise() -> None:
    assert label_correct("  Positive\n", "positive") == 1.0
    assert label_correct("positive.", "positive") == 0.0  # no punctuation stripping
    lookup = label_lookup(["Positive", "Negative"])
    assert map_prediction(" NEGATIVE ", lookup) == "Negative"
    assert map_prediction("neutral", lookup) == INVALID_LABEL


def test_registry_reports_item_and_corpus_classification() -> None:
    report = score_outputs("classification", PRED, labels=GOLD, settings={"labels": LABELS})
    assert report.item_values("label_correct") == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    (corpus,) = report.corpus
    assert (corpus.metric, corpus.version) == ("classification", "1")
    assert corpus.values["accuracy"] == pytest.approx(4 / 6)
    assert corpus.values["f1[cat]"] == pytest.approx(0.8)
    assert corpus.values["support[dog]"] == 2.0
    assert corpus.values["invalid_rate"] == pytest.approx(1 / 6)
    assert corpus.detail["confusion_matrix"][1] == [0, 1, 0, 1]
    assert corpus.detail["confusion_columns"][-1] == INVALID_LABEL
    assert report.warnings == ()


def test_registry_warns_when_label_set_is_inferred() -> None:
    report = score_outputs("classification", ["a", "b"], labels=["a", "b"])
    assert any("inferred" in w.message for w in report.warnings)
