"""Training-run submission: a run creates its study (and a draft study for the general hold-out
set), imports its items, assigns raters, opens rating and starts pre-scoring."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.text import slugify

from annotations import roles
from annotations import services as annotation_services
from annotations.errors import (
    ConflictError,
    DomainValidationError,
    NotFoundError,
)
from annotations.importers import jsonl_record_to_item
from annotations.models import Study, StudyStatus, TaskType
from scoring.models import (
    TrainingRun,
)

__all__ = [
    "MAX_SUBMISSION_ERRORS",
    "canonical_payload_sha",
    "run_create",
    "run_get",
    "run_submit",
    "unique_slug",
    "validate_items",
    "validate_submission",
]


from scoring.release.policy import policy_get

User = get_user_model()

MAX_SUBMISSION_ERRORS = 50


def canonical_payload_sha(payload: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def validate_items(records: Any, field: str, errors: dict[str, list[str]]) -> list:
    if not isinstance(records, list) or not records:
        errors.setdefault(field, []).append("must be a non-empty list of items")
        return []
    items, seen = [], {}
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


def validate_submission(payload: Any) -> tuple[dict[str, Any], list, list, Any]:
    """Checks a run submission and returns (fields, items, holdout items, training log), or
    raises DomainValidationError with field-level messages (`items[3]`,
    `training_log[7].eval_loss`)."""
    from scoring.stats.training import TrainingLogError, parse_training_log

    if not isinstance(payload, dict):
        raise DomainValidationError("the submission must be a JSON object")
    errors: dict[str, list[str]] = {}
    allowed = {
        "run_id",
        "base_model",
        "tuned_model",
        "task_type",
        "items",
        "holdout",
        "training_log",
        "raters",
        "overlap",
        "webhook_url",
        "base_model_path",
        "tuned_model_path",
        "name",
        "study_settings",
        "checkpoint_step",
    }
    for key in sorted(set(payload) - allowed):
        errors.setdefault(key, []).append("unknown field")
    for key in ("run_id", "base_model", "tuned_model"):
        value = payload.get(key)
        if not isinstance(value, str) or not value.strip():
            errors.setdefault(key, []).append("required, a non-empty string")
    task_type = payload.get("task_type", TaskType.GENERATION)
    if task_type not in TaskType.values:
        errors.setdefault("task_type", []).append(f"must be one of {', '.join(TaskType.values)}")
    items = validate_items(payload.get("items"), "items", errors)
    holdout = []
    if payload.get("holdout") is not None:
        holdout = validate_items(payload.get("holdout"), "holdout", errors)
    log = None
    if payload.get("training_log") is not None:
        try:
            log = parse_training_log(payload["training_log"], source="training_log")
        except TrainingLogError as exc:
            for problem in exc.problems:
                where, _, reason = problem.partition(": ")
                errors.setdefault(where or "training_log", []).append(reason or problem)
    checkpoint = payload.get("checkpoint_step")
    if checkpoint is not None and (
        not isinstance(checkpoint, int) or isinstance(checkpoint, bool) or checkpoint < 0
    ):
        errors.setdefault("checkpoint_step", []).append(
            "must be the training step of the checkpoint that ships (a non-negative integer)"
        )
    overlap = payload.get("overlap", 3)
    if not isinstance(overlap, int) or isinstance(overlap, bool) or not 1 <= overlap <= 50:
        errors.setdefault("overlap", []).append("must be an integer from 1 to 50")
    raters = payload.get("raters", [])
    if not isinstance(raters, list) or not all(isinstance(r, str) for r in raters):
        errors.setdefault("raters", []).append("must be a list of usernames")
    else:
        users = {
            u.username: u
            for u in User.objects.filter(username__in=raters).prefetch_related("groups")
        }
        for name in raters:
            if name not in users:
                errors.setdefault("raters", []).append(f"unknown user {name!r}")
            elif not roles.is_rater(users[name]):
                errors.setdefault("raters", []).append(f"{name!r} does not have the rater role")
    webhook = payload.get("webhook_url", "")
    if webhook and (
        not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))
    ):
        errors.setdefault("webhook_url", []).append("must be an http(s) URL")
    if errors:
        count = sum(len(v) for v in errors.values())
        raise DomainValidationError(
            f"the submission has {count} problem(s); nothing was created", errors=errors
        )
    return payload, items, holdout, log


def unique_slug(run_id: str, suffix: str = "") -> str:
    base = (slugify(run_id) or "run")[:60] + suffix
    slug = base
    if Study.objects.filter(slug=slug).exists():
        slug = f"{base[:60]}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"
    return slug


def run_submit(*, payload: Any, actor: AbstractBaseUser | None) -> tuple[TrainingRun, bool]:
    """Creates a run's study (and hold-out study), imports its items, assigns raters, opens the
    human study and starts pre-scoring. Idempotent: the same run id with the same content
    returns the existing run (created False); with different content it is refused.

    Raises DomainValidationError with field-level messages; nothing is created then."""
    fields, items, holdout, log = validate_submission(payload)
    sha = canonical_payload_sha(payload)
    existing = TrainingRun.objects.filter(run_id=fields["run_id"]).first()
    if existing is not None:
        if existing.payload_sha256 == sha:
            return existing, False
        raise DomainValidationError(
            f"run {fields['run_id']!r} was already submitted with different content; "
            "nothing was created",
            errors={"run_id": ["already submitted with different content"]},
        )
    with transaction.atomic():
        run = run_create(fields=fields, items=items, holdout=holdout, log=log, sha=sha, actor=actor)
    return run, True


def run_create(*, fields: dict, items: list, holdout: list, log, sha: str, actor) -> TrainingRun:
    from annotations.importers import ParseResult
    from scoring.release.planning import planning_update
    from scoring.services import scoring_job_start

    settings_extra = dict(fields.get("study_settings") or {})
    for key in ("base_model_path", "tuned_model_path"):
        if fields.get(key):
            settings_extra[key] = fields[key]
    if holdout:
        settings_extra["holdout_texts"] = [i.reference or i.prompt for i in holdout]
    study = annotation_services.study_create(
        slug=unique_slug(fields["run_id"]),
        name=fields.get("name") or f"Run {fields['run_id']}",
        task_type=fields.get("task_type", TaskType.GENERATION),
        overlap=fields.get("overlap", 3),
        base_model=fields["base_model"],
        tuned_model=fields["tuned_model"],
        created_by=actor,
        settings=settings_extra,
    )
    annotation_services.items_import(
        study=study, parsed=ParseResult(items, [], 0, len(items)), source="items"
    )
    holdout_study = None
    if holdout:
        holdout_study = annotation_services.study_create(
            slug=unique_slug(fields["run_id"], "-holdout"),
            name=f"Run {fields['run_id']} (general hold-out)",
            task_type=fields.get("task_type", TaskType.GENERATION),
            overlap=1,
            base_model=fields["base_model"],
            tuned_model=fields["tuned_model"],
            created_by=actor,
        )
        annotation_services.items_import(
            study=holdout_study, parsed=ParseResult(holdout, [], 0, len(holdout)), source="holdout"
        )
    if fields.get("raters"):
        annotation_services.raters_assign(study=study, usernames=fields["raters"])
    run = TrainingRun.objects.create(
        run_id=fields["run_id"],
        payload_sha256=sha,
        study=study,
        holdout_study=holdout_study,
        base_model=fields["base_model"],
        tuned_model=fields["tuned_model"],
        # The log as submitted; detectors parse it again, so a better detector needs no
        # resubmission.
        training_log={
            "raw": fields["training_log"],
            "checkpoint_step": fields.get("checkpoint_step"),
        }
        if log is not None
        else {},
        webhook_url=fields.get("webhook_url", ""),
        created_by=actor,
    )
    policy_get(study=study)
    planning_update(study=study)  # the run's answer says how many items it needs
    annotation_services.audit_record(
        entity="run",
        entity_id=run.run_id,
        action="submitted",
        actor=actor,
        study=study,
        after="open",
        details={"items": len(items), "holdout": len(holdout)},
    )
    try:
        annotation_services.study_transition(
            study=study, target=StudyStatus.OPEN, actor=actor, reason="run submitted"
        )
    except ConflictError as exc:
        # Raters could tell the sides apart (the blinding audit): the run and its pre-scoring
        # go ahead, the human study waits in draft for a researcher to fix or acknowledge it.
        annotation_services.audit_record(
            entity="run",
            entity_id=run.run_id,
            action="open_deferred",
            actor=actor,
            study=study,
            details={"reason": str(exc)},
        )
    scoring_job_start(study=study, created_by=actor)
    if holdout_study is not None:
        scoring_job_start(study=holdout_study, created_by=actor)
    return run


def run_get(*, run_id: str) -> TrainingRun:
    run = TrainingRun.objects.select_related("study", "holdout_study").filter(run_id=run_id).first()
    if run is None:
        raise NotFoundError(f"no run {run_id!r}")
    return run
