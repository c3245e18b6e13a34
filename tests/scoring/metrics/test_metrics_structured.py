"""Structured-output metrics: JSON validity, JSON Schema, regex."""

from __future__ import annotations

import pytest

from scoring.metrics import structured
from scoring.metrics.registry import score_outputs
from scoring.metrics.structured import json_schema_valid, json_valid, rate, regex_match

FENCED = '```json\n{"name": "Ada", "age": 36}\n```'
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("output", "valid"),
    [
        ('{"a": 1}', True),
        ("  [1, 2, 3]\n", True),
        ('"just a string"', True),
        ('{"a": NaN}', False),  # Python's json accepts NaN; RFC 8259 does not
        ("Infinity", False),
        ('{"a": 1} and some prose', False),
        ("{'a': 1}", False),
        ("", False),
        (FENCED, False),  # strict by default
    ],
)
def test_json_valid_is_strict(output: str, valid: bool) -> None:
    assert json_valid(output) == (1.0 if valid else 0.0)


def test_code_fence_only_accepted_when_allowed_and_alone() -> None:
    assert json_valid(FENCED, allow_code_fence=True) == 1.0
    assert json_valid("```\n[1]\n```\n", allow_code_fence=True) == 1.0
    assert json_valid("Here you go:\n" + FENCED, allow_code_fence=True) == 0.0
    assert json_valid("```python\n[1]\n```", allow_code_fence=True) == 0.0


def test_json_schema_conformance() -> None:
    assert json_schema_valid('{"name": "Ada", "age": 36}', SCHEMA) == (1.0, "")
    value, why = json_schema_valid('{"name": "Ada", "age": -1}', SCHEMA)
    assert value == 0.0 and why.startswith("age:")
    assert json_schema_valid('{"name": "Ada"}', SCHEMA)[0] == 0.0
    assert json_schema_valid("not json", SCHEMA) == (0.0, "invalid JSON")
    assert json_schema_valid(FENCED, SCHEMA)[0] == 0.0
    assert json_schema_valid(FENCED, SCHEMA, allow_code_fence=True)[0] == 1.0


def test_invalid_schema_raises_clear_error() -> None:
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        json_schema_valid("{}", {"type": "no-such-type"})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        json_schema_valid("{}", {"enum": [object()]})


def test_schema_is_checked_once_per_distinct_schema() -> None:
    structured._validator_for.cache_clear()
    for _ in range(10):
        json_schema_valid('{"name": "x", "age": 1}', dict(SCHEMA))  # equal, not identical
    info = structured._validator_for.cache_info()
    assert (info.misses, info.hits) == (1, 9)


def test_regex_modes() -> None:
    assert regex_match("2024-01-31\n", r"\d{4}-\d{2}-\d{2}") == 1.0  # whitespace stripped
    assert regex_match("Date: 2024-01-31", r"\d{4}-\d{2}-\d{2}") == 0.0
    assert regex_match("Date: 2024-01-31", r"\d{4}-\d{2}-\d{2}", mode="search") == 1.0
    with pytest.raises(ValueError, match="not a valid regular expression"):
        regex_match("x", "(")
    with pytest.raises(ValueError, match="regex_mode"):
        regex_match("x", "x", mode="match")  # type: ignore[arg-type]


def test_regex_catastrophic_backtracking_is_a_clear_settings_error(monkeypatch) -> None:
    monkeypatch.setattr(structured, "REGEX_TIMEOUT_SECONDS", 0.05)
    # (a|aa)+$ on "aaa...!" backtracks exponentially: without the timeout it would not return.
    with pytest.raises(ValueError, match="catastrophic backtracking"):
        regex_match("a" * 40 + "!", r"(a|aa)+$", mode="search")
    assert regex_match("a" * 40, r"(a|aa)+$") == 1.0  # the same pattern is fine when it matches


def test_rate() -> None:
    assert rate([1.0, 0.0, 1.0, 1.0]) == 0.75
    with pytest.raises(ValueError, match="zero items"):
        rate([])


def test_registry_structured_metrics_and_skips() -> None:
    outputs = ['{"name": "Ada", "age": 36}', FENCED, "nope"]
    report = score_outputs("structured", outputs, settings={"json_schema": SCHEMA})
    assert report.item_values("json_valid") == [1.0, 0.0, 0.0]
    assert report.item_values("json_schema_valid") == [1.0, 0.0, 0.0]
    (regex_skip,) = [s for s in report.skipped if s.metric == "regex_match"]
    assert regex_skip.reason == "setting 'regex' not set" and regex_skip.item_indices is None

    relaxed = score_outputs(
        "structured",
        outputs,
        settings={"json_allow_code_fence": True, "regex": r"\{.*\}", "regex_mode": "search"},
    )
    assert relaxed.item_values("json_valid") == [1.0, 1.0, 0.0]
    assert relaxed.item_values("regex_match") == [1.0, 1.0, 0.0]


def test_registry_propagates_invalid_schema() -> None:
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        score_outputs("structured", ["{}"], settings={"json_schema": {"type": 5}})
