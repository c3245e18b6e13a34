"""The shape of a training-run submission, checked by one DRF serializer (API and command line).

Errors are field-level and flat, the way a pipeline author reads them: `run_id`,
`items[3].id`, `training_log[7].eval_loss`, `study_settings.judge`. Before any field is read,
every value is walked once (iteratively) for what the database cannot store or a recursive
walk cannot survive: U+0000, lone surrogates, nesting deeper than `MAX_JSON_DEPTH`
(`annotations.jsonsafety`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.contrib.auth import get_user_model
from django.core.validators import RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotations import roles
from annotations.importers import ParsedItem, jsonl_record_to_item
from annotations.jsonsafety import json_problem
from annotations.models import TaskType
from evalplatform.outbound import study_settings_errors, webhook_url_errors

__all__ = [
    "MAX_SUBMISSION_ERRORS",
    "MAX_SUBMISSION_ITEMS",
    "RUN_ID_PATTERN",
    "RunSubmissionSerializer",
    "flat_errors",
    "json_finite",
]

MAX_SUBMISSION_ERRORS = 50
MAX_SUBMISSION_ITEMS = 100_000
# Letters, digits and `._:-`; no `/` (the id is a URL path segment) and no leading punctuation.
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

User = get_user_model()


def flat_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as `{"field[2].sub": ["message", ...]}`."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):
                name = f"{prefix}[{key}]"
            elif key == "non_field_errors" or key == "":
                name = prefix
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            for field, messages in flat_errors(value, name).items():
                flat.setdefault(field, []).extend(messages)
    elif isinstance(detail, list) and detail and all(isinstance(d, str) for d in detail):
        flat[prefix or "submission"] = [str(d) for d in detail]
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if value:
                for field, messages in flat_errors(value, f"{prefix}[{index}]").items():
                    flat.setdefault(field, []).extend(messages)
    else:
        flat[prefix or "submission"] = [str(detail)]
    return flat


def json_finite(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None (JSON columns cannot hold them; the
    training log keeps its NaN grad norms as nulls). Depth is bounded by the checks above."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_finite(v) for v in value]
    return value


class TextField(serializers.CharField):
    """A CharField that takes only JSON strings (DRF would turn `12` into `"12"`, and the
    payload hash would then differ from a resubmission that sends `"12"`)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.ANY)
class RawJSONField(serializers.Field):
    """Any JSON value, as decoded (already walked by `json_problem`). DRF's JSONField would
    re-encode it strictly and refuse the NaN a training log may hold before the log parser
    can name the entry."""

    def to_internal_value(self, data: Any) -> Any:
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class RunSubmissionSerializer(serializers.Serializer):
    """A run submission: the study to create, its items, the training log, who rates it and
    where to report. `validated_data` adds `parsed_items`, `parsed_holdout` and `parsed_log`."""

    run_id = TextField(
        max_length=128,
        trim_whitespace=False,
        validators=[
            RegexValidator(
                RUN_ID_PATTERN,
                message="must start with a letter or digit and hold only letters, digits and "
                "._:- (at most 128 characters)",
            )
        ],
    )
    base_model = TextField(max_length=200)
    tuned_model = TextField(max_length=200)
    task_type = serializers.ChoiceField(choices=TaskType.choices, default=TaskType.GENERATION)
    name = TextField(max_length=200, required=False, allow_blank=True)
    items = RawJSONField()
    holdout = RawJSONField(required=False, allow_null=True)
    training_log = RawJSONField(required=False, allow_null=True)
    raters = serializers.ListField(
        child=TextField(max_length=150), required=False, default=list, max_length=1000
    )
    overlap = serializers.IntegerField(min_value=1, max_value=50, default=3)
    webhook_url = TextField(max_length=500, required=False, allow_blank=True, default="")
    base_model_path = TextField(max_length=500, required=False, allow_blank=True)
    tuned_model_path = TextField(max_length=500, required=False, allow_blank=True)
    study_settings = RawJSONField(required=False, allow_null=True)
    # The training step of the checkpoint that ships (the overfitting detector judges it).
    checkpoint_step = serializers.IntegerField(min_value=0, required=False, allow_null=True)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"submission": ["must be a JSON object"]})
        errors: dict[str, list[str]] = {}
        for key in sorted(set(data) - set(self.fields), key=str):
            errors.setdefault(str(key), []).append("unknown field")
        for key, value in data.items():
            # The training-log parser names a NaN loss itself ("training_log[3].eval_loss").
            found = json_problem(value, allow_non_finite=key == "training_log")
            if found is not None:
                path, reason = found
                where = f"{key}.{path}" if path and not path.startswith("[") else f"{key}{path}"
                errors.setdefault(where, []).append(reason)
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)

    def validate_webhook_url(self, value: str) -> str:
        if value:
            problems = webhook_url_errors(value)
            if problems:
                raise serializers.ValidationError(problems)
        return value

    def validate_study_settings(self, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        problems = study_settings_errors(value)
        if problems:
            raise serializers.ValidationError(problems)
        return value

    def validate_training_log(self, value: Any) -> Any:
        if value is not None and not isinstance(value, list | str | dict):
            raise serializers.ValidationError(
                "must be a list of log entries (Trainer log_history), a trainer_state object, "
                "or CSV / JSONL text"
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        from scoring.stats.training import TrainingLogError, parse_training_log

        errors: dict[str, list[str]] = {}
        attrs["parsed_items"] = items_check(attrs.get("items"), "items", errors)
        attrs["parsed_holdout"] = []
        if attrs.get("holdout") is not None:
            attrs["parsed_holdout"] = items_check(attrs["holdout"], "holdout", errors)
        attrs["parsed_log"] = None
        log = attrs.get("training_log")
        if log is not None:
            text_or_list = json.dumps(log) if isinstance(log, dict) else log
            try:
                attrs["parsed_log"] = parse_training_log(text_or_list, source="training_log")
            except TrainingLogError as exc:
                for problem in exc.problems:
                    where, _, reason = problem.partition(": ")
                    errors.setdefault(where or "training_log", []).append(reason or problem)
        raters = attrs.get("raters") or []
        users = {
            u.username: u
            for u in User.objects.filter(username__in=raters).prefetch_related("groups")
        }
        for name in raters:
            if name not in users:
                errors.setdefault("raters", []).append(f"unknown user {name!r}")
            elif not roles.is_rater(users[name]):
                errors.setdefault("raters", []).append(f"{name!r} does not have the rater role")
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def items_check(records: Any, field: str, errors: dict[str, list[str]]) -> list[ParsedItem]:
    """Parses a list of JSONL-shaped item records; problems go to `errors` under
    `field[index]` / `field[index].id`."""
    if not isinstance(records, list) or not records:
        errors.setdefault(field, []).append("must be a non-empty list of items")
        return []
    if len(records) > MAX_SUBMISSION_ITEMS:
        errors.setdefault(field, []).append(f"at most {MAX_SUBMISSION_ITEMS:,} items")
        return []
    items: list[ParsedItem] = []
    seen: dict[str, int] = {}
    for index, record in enumerate(records):
        item, problems = jsonl_record_to_item(record, index)
        for problem in problems:
            errors.setdefault(f"{field}[{index}]", []).append(problem)
        if item is None:
            continue
        if item.external_id in seen:
            errors.setdefault(f"{field}[{index}].id", []).append(
                f"duplicate id {item.external_id!r} (first at {field}[{seen[item.external_id]}])"
            )
            continue
        seen[item.external_id] = index
        items.append(item)
        if sum(len(v) for v in errors.values()) >= MAX_SUBMISSION_ERRORS:
            break
    return items
