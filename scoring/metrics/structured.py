"""Structured-output metrics: JSON validity, JSON-Schema conformance and regex match.

* JSON validity follows RFC 8259: the whole output (surrounding whitespace allowed) must be one
  JSON text. Python's ``json`` extensions ``NaN``/``Infinity`` are rejected. Strict by default: a
  Markdown code fence around the JSON makes it invalid, unless the study sets
  ``json_allow_code_fence=True``; then an output consisting of exactly one fenced block
  (```` ```json ```` or a bare ```` ``` ````, surrounding whitespace allowed) is unwrapped first.
  Prose before or after the fence stays invalid - the metric measures "could a program consume
  this output as-is (modulo fences)", not "is there JSON somewhere in it".
* Schema conformance validates the parsed JSON with ``jsonschema`` using the validator class
  the schema's ``$schema`` names (latest draft by default). ``format`` is not asserted (it is an
  annotation by default since draft 2019-09). An unparseable output does not conform.
* Regex match uses Python's ``re`` with ``regex_mode`` ``"fullmatch"`` (default) or
  ``"search"``, after stripping surrounding whitespace from the output (models often end with a
  newline).

Each is 1.0/0.0 per item; the rate for a study is the mean over items (:func:`rate`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal

import jsonschema
import regex
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from scoring.metrics.registry import MetricValue, register

__all__ = [
    "extract_json_text",
    "json_schema_valid",
    "json_valid",
    "parse_json",
    "rate",
    "regex_match",
    "schema_validator",
]

_FENCE_RE = re.compile(r"\A\s*```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)\r?\n?```\s*\Z", re.DOTALL)


def extract_json_text(output: str, *, allow_code_fence: bool = False) -> str:
    """The text to parse as JSON: ``output`` itself, or the inside of a lone code fence."""
    if allow_code_fence:
        match = _FENCE_RE.match(output)
        if match:
            return match.group(1)
    return output


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(output: str, *, allow_code_fence: bool = False) -> tuple[bool, Any]:
    """``(True, value)`` if the output is one JSON text, else ``(False, None)``."""
    text = extract_json_text(output, allow_code_fence=allow_code_fence)
    try:
        return True, json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        # json.JSONDecodeError is a ValueError; absurdly deep nesting hits the recursion limit.
        return False, None


def json_valid(output: str, *, allow_code_fence: bool = False) -> float:
    """1.0 if ``output`` is a single valid JSON text (RFC 8259), else 0.0."""
    return 1.0 if parse_json(output, allow_code_fence=allow_code_fence)[0] else 0.0


@lru_cache(maxsize=64)
def _validator_for(canonical_schema: str) -> Validator:
    schema = json.loads(canonical_schema)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(
            f"settings['json_schema'] is not a valid JSON Schema: {exc.message}"
        ) from exc
    return cls(schema)


def schema_validator(schema: Mapping[str, Any] | bool) -> Validator:
    """A compiled validator for ``schema``; the schema itself is checked once and cached.

    Raises ``ValueError`` if the schema is not JSON-serialisable or not a valid JSON Schema.
    """
    if not isinstance(schema, Mapping | bool):
        raise ValueError(f"json_schema must be an object or boolean, not {type(schema).__name__}")
    try:
        # Canonical text as the cache key: schemas arrive as (unhashable) dicts.
        key = json.dumps(schema, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"json_schema is not JSON-serialisable: {exc}") from exc
    return _validator_for(key)


def json_schema_valid(
    output: str, schema: Mapping[str, Any] | bool, *, allow_code_fence: bool = False
) -> tuple[float, str]:
    """``(1.0, "")`` if the output parses and conforms to ``schema``, else ``(0.0, why)``.

    ``why`` is a short reason (parse failure or the best-matching schema error). Raises
    ``ValueError`` for an invalid schema.
    """
    validator = schema_validator(schema)
    ok, value = parse_json(output, allow_code_fence=allow_code_fence)
    if not ok:
        return 0.0, "invalid JSON"
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return 1.0, ""
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return 0.0, f"{where}: {error.message}"[:200]


# A researcher's pattern runs on every output; a pattern that backtracks catastrophically
# (e.g. `(a+)+$`) would hold a worker until the task's time limit and fail on every retry. The
# `regex` module (re-compatible syntax) can stop a match after a timeout: that becomes a clear
# settings error instead.
REGEX_TIMEOUT_SECONDS = 1.0


@lru_cache(maxsize=64)
def _compile(pattern: str) -> regex.Pattern[str]:
    try:
        return regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(f"settings['regex'] is not a valid regular expression: {exc}") from exc


def regex_match(
    output: str, pattern: str, *, mode: Literal["fullmatch", "search"] = "fullmatch"
) -> float:
    """1.0 if the stripped output matches ``pattern`` (whole string or anywhere), else 0.0.

    Raises ``ValueError`` for an invalid pattern or mode.
    """
    if not isinstance(pattern, str):
        raise ValueError("regex pattern must be a string")
    compiled = _compile(pattern)
    text = output.strip()
    if mode not in ("fullmatch", "search"):
        raise ValueError(f"regex_mode must be 'fullmatch' or 'search', not {mode!r}")
    match = compiled.fullmatch if mode == "fullmatch" else compiled.search
    try:
        return 1.0 if match(text, timeout=REGEX_TIMEOUT_SECONDS) else 0.0
    except TimeoutError as exc:
        raise ValueError(
            f"settings['regex'] ran over {REGEX_TIMEOUT_SECONDS:g} s on one output of "
            f"{len(text):,} characters (catastrophic backtracking?); simplify the pattern"
        ) from exc


def rate(values: Sequence[float]) -> float:
    """Mean of per-item 1/0 values (a rate in [0, 1]); raises ``ValueError`` if empty/non-finite."""
    if len(values) == 0:
        raise ValueError("cannot compute a rate over zero items")
    total = math.fsum(values)
    if not math.isfinite(total):
        raise ValueError("rate: values must be finite")
    return total / len(values)


# --------------------------------------------------------------------------- registry adapters


def _allow_fence(settings: Mapping[str, Any]) -> bool:
    return settings.get("json_allow_code_fence", False) is True


@register("json_valid", version="1", task_types=("structured",), kind="task", level="item")
def _json_valid_item(
    output: str,
    *,
    reference: str | None,
    label: str | None,
    metadata: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> float:
    """1/0: output is one valid JSON text (fence allowed only with json_allow_code_fence)."""
    return json_valid(output, allow_code_fence=_allow_fence(settings))


@register(
    "json_schema_valid",
    version="1",
    task_types=("structured",),
    kind="task",
    level="item",
    needs=("setting:json_schema",),
)
def _json_schema_item(
    output: str,
    *,
    reference: str | None,
    label: str | None,
    metadata: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> MetricValue:
    """1/0: output parses as JSON and conforms to settings['json_schema']."""
    value, why = json_schema_valid(
        output, settings["json_schema"], allow_code_fence=_allow_fence(settings)
    )
    return MetricValue(value, why)


@register(
    "regex_match",
    version="1",
    task_types=("structured",),
    kind="task",
    level="item",
    needs=("setting:regex",),
)
def _regex_item(
    output: str,
    *,
    reference: str | None,
    label: str | None,
    metadata: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> float:
    """1/0: stripped output matches settings['regex'] (settings['regex_mode'])."""
    return regex_match(output, settings["regex"], mode=settings.get("regex_mode", "fullmatch"))
