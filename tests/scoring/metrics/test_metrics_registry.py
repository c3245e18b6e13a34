"""Metric registry and score_outputs: selection, skips, versions, no mutation."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from scoring.metrics import registry
from scoring.metrics.registry import (
    TASK_TYPES,
    CorpusValue,
    MetricValue,
    Registry,
    score_outputs,
)

BUILTIN = {
    "label_correct",
    "classification",
    "exact_match",
    "sentence_bleu",
    "corpus_bleu",
    "rouge1",
    "rouge2",
    "rougeL",
    "json_valid",
    "json_schema_valid",
    "regex_match",
    "code_pass",
}


def test_builtin_metrics_are_registered_with_valid_descriptions() -> None:
    metrics = {m.name: m for m in registry.all_metrics()}
    assert set(metrics) >= BUILTIN
    for metric in metrics.values():
        assert metric.version and isinstance(metric.version, str)
        assert metric.task_types <= TASK_TYPES
        assert metric.kind in {"task", "general_quality"}
        assert metric.level in {"item", "corpus"}
        assert metric.description
    assert metrics["corpus_bleu"].level == "corpus"
    assert metrics["code_pass"].enabled_by == "code_execution_enabled"


def test_for_task_and_get() -> None:
    generation = {m.name for m in registry.for_task("generation")}
    assert {"exact_match", "sentence_bleu", "corpus_bleu", "rouge1", "rougeL"} <= generation
    chat = {m.name for m in registry.for_task("chat")}
    assert "exact_match" not in chat and "rougeL" in chat
    assert {m.name for m in registry.for_task("code")} == {"code_pass"}
    assert registry.get("rougeL").name == "rougeL"
    with pytest.raises(KeyError, match="unknown metric 'nope'"):
        registry.get("nope")
    with pytest.raises(ValueError, match="unknown task type"):
        registry.for_task("poetry")


def _custom_registry() -> Registry:
    reg = Registry()

    @reg.register(
        "length_words",
        version="3",
        task_types=("generation", "chat"),
        kind="general_quality",
        level="item",
    )
    def length_words(
        output: str,
        *,
        reference: str | None,
        label: str | None,
        metadata: Mapping[str, Any],
        settings: Mapping[str, Any],
    ) -> float:
        """Words in the output."""
        return float(len(output.split()))

    @reg.register(
        "has_topic",
        version="1",
        task_types=("generation",),
        kind="task",
        level="item",
        needs=("metadata:topic",),
    )
    def has_topic(
        output: str,
        *,
        reference: str | None,
        label: str | None,
        metadata: Mapping[str, Any],
        settings: Mapping[str, Any],
    ) -> MetricValue | None:
        """Output mentions the item's topic; n/a for empty topics."""
        if not metadata["topic"]:
            return MetricValue(None, "empty topic")
        return MetricValue(float(metadata["topic"] in output), detail="checked")

    @reg.register(
        "mean_chars",
        version="2",
        task_types=("generation",),
        kind="general_quality",
        level="corpus",
    )
    def mean_chars(
        outputs: Sequence[str],
        *,
        references: Sequence[str | None],
        labels: Sequence[str | None],
        metadatas: Sequence[Mapping[str, Any]],
        settings: Mapping[str, Any],
    ) -> CorpusValue:
        """Mean characters per output."""
        return CorpusValue({"mean": sum(map(len, outputs)) / len(outputs)}, {"unit": "chars"})

    return reg


def test_custom_metrics_plug_in_and_record_name_and_version() -> None:
    reg = _custom_registry()
    report = score_outputs(
        "generation",
        ["a b c", "cats and dogs", "x"],
        metadatas=[{"topic": "cats"}, {"topic": "cats"}, {"topic": ""}],
        registry=reg,
    )
    assert [(s.metric, s.version, s.item_index, s.value) for s in report.items] == [
        ("length_words", "3", 0, 3.0),
        ("has_topic", "1", 0, 0.0),
        ("length_words", "3", 1, 3.0),
        ("has_topic", "1", 1, 1.0),
        ("length_words", "3", 2, 1.0),
    ]
    assert report.items[1].detail == "checked"
    (skip,) = report.skipped
    assert (skip.metric, skip.reason, skip.item_indices) == ("has_topic", "empty topic", (2,))
    (corpus,) = report.corpus
    assert (corpus.metric, corpus.version, corpus.n_items) == ("mean_chars", "2", 3)
    assert corpus.values == {"mean": pytest.approx(19 / 3)} and corpus.detail == {"unit": "chars"}
    assert report.item_values("has_topic") == [0.0, 1.0, None]
    assert len(report.all_scores()) == 6


def test_skips_are_reported_with_reasons() -> None:
    reg = _custom_registry()
    # No metadata at all: has_topic is skipped for every item -> one metric-level entry.
    report = score_outputs("chat", ["hi"], registry=reg, metric_names=["has_topic", "length_words"])
    assert [(s.metric, s.reason, s.item_indices) for s in report.skipped] == [
        ("has_topic", "not applicable to task type 'chat'", None)
    ]
    report = score_outputs("generation", ["hi", "yo"], registry=reg, metric_names=["has_topic"])
    assert [(s.reason, s.item_indices) for s in report.skipped] == [("no metadata['topic']", None)]


def test_builtin_reference_metrics_skip_items_without_reference() -> None:
    report = score_outputs("generation", ["the cat", "a dog"], ["the cat", None])
    assert report.item_values("exact_match") == [1.0, None]
    skipped = {s.metric: s for s in report.skipped}
    assert skipped["exact_match"].reason == "no reference"
    assert skipped["exact_match"].item_indices == (1,)
    (bleu,) = report.corpus
    assert bleu.values["n_items"] == 1.0 and bleu.n_items == 1
    assert bleu.detail["signature"].startswith("nrefs:1|")

    none = score_outputs("generation", ["the cat"], metric_names=["corpus_bleu", "rouge1"])
    assert {(s.metric, s.reason) for s in none.skipped} == {
        ("corpus_bleu", "no reference"),
        ("rouge1", "no reference"),
    }


def test_sentence_bleu_scores_carry_signature() -> None:
    report = score_outputs("generation", ["the cat sat"], ["the cat sat on the mat"])
    (bleu,) = [s for s in report.items if s.metric == "sentence_bleu"]
    assert bleu.value == pytest.approx(100 * math.exp(-1))
    assert "eff:yes" in bleu.detail


def test_non_latin_rouge_warning_reaches_the_report() -> None:
    report = score_outputs(
        "generation",
        ["кошка сидела", "the cat"],
        ["кошка сидит", "the cat"],
        metric_names=["rouge1"],
    )
    (warning,) = report.warnings
    assert warning.metric == "rouge1" and warning.item_indices == (0,)
    assert report.item_values("rouge1") == [pytest.approx(0.5), 1.0]


def test_inputs_are_not_mutated_and_settings_are_read_only() -> None:
    reg = Registry()

    @reg.register("meddler", version="1", task_types=("generation",), kind="task", level="item")
    def meddler(
        output: str,
        *,
        reference: str | None,
        label: str | None,
        metadata: Mapping[str, Any],
        settings: Mapping[str, Any],
    ) -> float:
        """Tries to write into settings."""
        settings["x"] = 1  # type: ignore[index]
        return 0.0

    with pytest.raises(TypeError):
        score_outputs("generation", ["a"], settings={}, registry=reg)

    outputs = ["the cat", "a dog"]
    references = ["the cat", "the dog"]
    metadatas = [{"k": [1]}, {"k": [2]}]
    conf = {"rouge_tokenizer": "auto"}
    snapshot = copy.deepcopy((outputs, references, metadatas, conf))
    score_outputs("generation", outputs, references, metadatas=metadatas, settings=conf)
    assert (outputs, references, metadatas, conf) == snapshot


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"outputs": []}, ValueError, "empty"),
        ({"outputs": ["a"], "references": ["a", "b"]}, ValueError, "references has 2"),
        ({"outputs": ["a"], "labels": []}, ValueError, "labels has 0"),
        ({"outputs": [b"a"]}, TypeError, "expected str"),
        ({"outputs": ["a"], "references": "a"}, TypeError, "single string"),
        ({"outputs": ["a"], "metric_names": ["nope"]}, KeyError, "unknown metric"),
    ],
)
def test_bad_input_raises(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        score_outputs("generation", **kwargs)


def test_unknown_task_type_raises() -> None:
    with pytest.raises(ValueError, match="unknown task type"):
        score_outputs("poetry", ["a"])


def test_registration_is_validated() -> None:
    reg = _custom_registry()

    def fn(output: str, **kwargs: Any) -> float:
        return 0.0

    with pytest.raises(ValueError, match="already registered"):
        reg.register("length_words", version="1", task_types=("chat",), kind="task", level="item")(
            fn
        )
    bad = [
        {"task_types": ("poetry",)},
        {"task_types": ()},
        {"kind": "vibes"},
        {"level": "batch"},
        {"needs": ("referenc",)},
        {"version": ""},
    ]
    for i, override in enumerate(bad):
        spec: dict[str, Any] = {
            "version": "1",
            "task_types": ("chat",),
            "kind": "task",
            "level": "item",
            **override,
        }
        with pytest.raises(ValueError):
            reg.register(f"bad{i}", **spec)(fn)


def test_non_finite_metric_values_are_rejected() -> None:
    reg = Registry()

    @reg.register("broken", version="1", task_types=("chat",), kind="task", level="item")
    def broken(output: str, **kwargs: Any) -> float:
        return math.nan

    with pytest.raises(ValueError, match="non-finite"):
        score_outputs("chat", ["a"], registry=reg)


def test_documented_study_call() -> None:
    # The call the Django task makes for one system's outputs.
    report = score_outputs(
        task_type="generation",
        outputs=["Paris is the capital.", "Berlin"],
        references=["Paris is the capital.", "Bonn"],
        labels=None,
        metadatas=[{}, {}],
        settings={},
    )
    assert report.item_values("exact_match") == [1.0, 0.0]
    assert {c.metric for c in report.corpus} == {"corpus_bleu"}
    assert report.skipped == ()
