"""Training-run submission: a run creates its study (and a draft study for the general hold-out
set), imports its items, assigns raters, opens rating and starts pre-scoring."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from annotations import services as annotation_services
from annotations.errors import (
    ConflictError,
    DomainValidationError,
    NotFoundError,
)
from annotations.models import Study, StudyStatus, TaskType
from scoring.models import (
    TrainingRun,
)
from scoring.release.submission import (
    RUN_ID_PATTERN,
    RunSubmissionSerializer,
    flat_errors,
    json_finite,
)

__all__ = [
    "canonical_payload_sha",
    "run_create",
    "run_existing",
    "run_get",
    "run_submit",
    "unique_slug",
    "validate_submission",
]


from scoring.release.policy import policy_get

User = get_user_model()


def canonical_payload_sha(payload: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def validate_submission(payload: Any) -> tuple[dict[str, Any], list, list, Any]:
    """Checks a run submission (`RunSubmissionSerializer`) and returns (fields, items, holdout
    items, training log), or raises DomainValidationError with flat field-level messages
    (`items[3].id`, `training_log[7].eval_loss`)."""
    serializer = RunSubmissionSerializer(data=payload)
    if not serializer.is_valid():
        errors = flat_errors(serializer.errors)
        count = sum(len(v) for v in errors.values())
        raise DomainValidationError(
            f"the submission has {count} problem(s); nothing was created", errors=errors
        )
    fields = dict(serializer.validated_data)
    items = fields.pop("parsed_items")
    holdout = fields.pop("parsed_holdout")
    log = fields.pop("parsed_log")
    return fields, items, holdout, log


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
    existing = run_existing(run_id=fields["run_id"], sha=sha)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            run = run_create(
                fields=fields, items=items, holdout=holdout, log=log, sha=sha, actor=actor
            )
    except (IntegrityError, ConflictError):
        # Identical submissions raced: the other one committed first (its study slug or run id
        # is taken). Its run answers this request too; different content is refused as usual.
        existing = run_existing(run_id=fields["run_id"], sha=sha)
        if existing is None:
            raise
        return existing, False
    return run, True


def run_existing(*, run_id: str, sha: str) -> TrainingRun | None:
    """The run already submitted under `run_id` with the same content, or None when there is
    none. Raises DomainValidationError when it was submitted with different content."""
    existing = TrainingRun.objects.filter(run_id=run_id).first()
    if existing is None:
        return None
    if existing.payload_sha256 != sha:
        raise DomainValidationError(
            f"run {run_id!r} was already submitted with different content; nothing was created",
            errors={"run_id": ["already submitted with different content"]},
        )
    return existing


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
        study=study,
        parsed=ParseResult(items, [], 0, len(items)),
        source="items",
        actor=actor,
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
            study=holdout_study,
            parsed=ParseResult(holdout, [], 0, len(holdout)),
            source="holdout",
            actor=actor,
        )
    if fields.get("raters"):
        annotation_services.raters_assign(study=study, usernames=fields["raters"], actor=actor)
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
            "raw": json_finite(fields["training_log"]),
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
    if not re.fullmatch(RUN_ID_PATTERN, run_id):
        # No run can have such an id (and a NUL byte would not even reach the database).
        raise NotFoundError("no run with that id")
    run = TrainingRun.objects.select_related("study", "holdout_study").filter(run_id=run_id).first()
    if run is None:
        raise NotFoundError(f"no run {run_id!r}")
    return run
