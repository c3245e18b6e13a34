"""Writes: users, studies, study states and the audit log, adjudication (rater membership:
`annotations.services.raters`)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, ProtectedError, Q, RestrictedError
from django.utils import timezone

from annotations import roles
from annotations.errors import (
    ConflictError,
    DomainPermissionError,
    DomainValidationError,
    NotFoundError,
)
from annotations.jsonsafety import json_problem
from annotations.models import (
    SIGN_OFF_STATES,
    STUDY_TRANSITIONS,
    AuditEvent,
    Item,
    Judgment,
    Preference,
    Study,
    StudyCollaborator,
    StudyStatus,
)
from annotations.signals import evidence_changed, study_created, study_opened
from evalplatform.outbound import study_settings_errors

__all__ = [
    "ORDER_MODULUS",
    "STUDY_EDITABLE_FIELDS",
    "adjudication_record",
    "audit_record",
    "collaborator_add",
    "collaborator_remove",
    "evidence_changed_notify",
    "evidence_version_bump",
    "password_check",
    "roles_ensure",
    "status_transition_check",
    "study_archive",
    "study_create",
    "study_settings_check",
    "study_delete",
    "study_reopen",
    "study_transition",
    "study_update",
    "user_create",
    "validation_error_from",
]

User = get_user_model()

# Prime modulus of the per-rater item order ((id * a + b) mod P, squared mod P; see
# `queue_sql._candidates`), so each rater walks the items in an order of their own.
ORDER_MODULUS = 2_147_483_647


def validation_error_from(exc: ValidationError) -> DomainValidationError:
    if hasattr(exc, "message_dict"):
        errors = {field: [str(m) for m in messages] for field, messages in exc.message_dict.items()}
        summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        return DomainValidationError(summary, errors=errors)
    return DomainValidationError("; ".join(exc.messages), errors=list(exc.messages))


# --- audit and study states -----------------------------------------------------------------


def audit_record(
    *,
    entity: str,
    entity_id: str | int,
    action: str,
    actor: AbstractBaseUser | None = None,
    study: Study | None = None,
    before: str = "",
    after: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Appends one audit event (who, what, when)."""
    return AuditEvent.objects.create(
        entity=entity,
        entity_id=str(entity_id),
        action=action,
        study=study,
        study_slug=study.slug if study is not None else "",
        before=before,
        after=after,
        actor=actor if actor is not None and actor.is_authenticated else None,
        details=details or {},
    )


def status_transition_check(*, current: str, target: str, allow_sign_off: bool = False) -> None:
    """Raises ConflictError unless `current -> target` is an allowed study move."""
    if current == target:
        return
    if target in SIGN_OFF_STATES and not allow_sign_off:
        raise ConflictError(f"a study becomes {target} only through a release sign-off")
    if target not in STUDY_TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(STUDY_TRANSITIONS.get(current, frozenset()))) or "none"
        raise ConflictError(f"a study cannot move from {current} to {target} (allowed: {allowed})")


@transaction.atomic
def study_transition(
    *,
    study: Study,
    target: str,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    allow_sign_off: bool = False,
    acknowledge_blinding_risk: bool = False,
    reopen: bool = False,
) -> Study:
    """Moves a study to `target` along an allowed transition and records it in the audit log.

    A sign-off decision stays in force: a person (`actor` given) takes a signed-off or rejected
    study out of that state only through `study_reopen`; without an actor it is the system
    itself, after the evidence changed (`scoring.release.signoffs_mark_stale`). Nobody moves an
    archived study (the system still may: a late score can make its sign-off stale).

    Every move into open first runs the blinding audit: when what raters will see tells base
    from tuned on surface features alone (AUC above the threshold, length aside), the move
    needs `acknowledge_blinding_risk` and a `reason` (recorded with the AUC and the tells).
    Raises ConflictError (a disallowed move, or an unacknowledged blinding risk),
    DomainValidationError (an acknowledgement without a reason)."""
    # Imported here: the blinding service records audit events through this module.
    from annotations.services.blinding import blinding_open_check

    locked = Study.objects.select_for_update().get(pk=study.pk)
    if locked.archived_at is not None and actor is not None:
        raise ConflictError(f"study {locked.slug!r} is archived and read-only")
    status_transition_check(current=locked.status, target=target, allow_sign_off=allow_sign_off)
    if locked.status == target:
        return locked
    if locked.status in SIGN_OFF_STATES and actor is not None and not reopen:
        raise ConflictError(
            f"study {locked.slug!r} is {locked.status}: the decision stands until the evidence "
            "changes or a release owner reopens it (with a reason)"
        )
    if target == StudyStatus.OPEN:
        blinding_open_check(
            study=locked,
            acknowledge_blinding_risk=acknowledge_blinding_risk,
            reason=reason,
            actor=actor,
        )
    before = locked.status
    locked.status = target
    locked.save(update_fields=["status", "updated_at"])
    audit_record(
        entity="study",
        entity_id=locked.slug,
        action="status",
        actor=actor,
        study=locked,
        before=before,
        after=target,
        details={"reason": reason} if reason else None,
    )
    if target == StudyStatus.OPEN:
        study_id = locked.pk
        transaction.on_commit(lambda: study_opened.send(sender=Study, study_id=study_id))
    return locked


@transaction.atomic
def study_reopen(*, study: Study, actor: AbstractBaseUser, reason: str) -> Study:
    """A release owner (or admin) takes a signed-off or rejected study back to reconciling, on
    unchanged evidence, saying why; audited. The earlier sign-offs stay on record.

    Raises DomainPermissionError, DomainValidationError (no reason), ConflictError (the study
    is not signed off or rejected)."""
    from annotations.permissions import can_reopen_study

    if not can_reopen_study(actor, study):
        raise DomainPermissionError("only a release owner or an admin may reopen a study")
    if not reason.strip():
        raise DomainValidationError(
            "say why the study is reopened", errors={"reason": ["required"]}
        )
    locked = Study.objects.select_for_update().get(pk=study.pk)
    if locked.status not in SIGN_OFF_STATES:
        raise ConflictError(
            f"study {locked.slug!r} is {locked.status}; only a signed-off or rejected study "
            "can be reopened"
        )
    before = locked.status
    locked = study_transition(
        study=locked,
        target=StudyStatus.RECONCILING,
        actor=actor,
        reason=reason.strip(),
        reopen=True,
    )
    audit_record(
        entity="study",
        entity_id=locked.slug,
        action="reopened",
        actor=actor,
        study=locked,
        before=before,
        after=locked.status,
        details={"reason": reason.strip()},
    )
    return locked


def evidence_version_bump(study_id: int) -> None:
    """Counts one change of a study's evidence: whatever was built from an older version (a
    cached report) is stale. One autocommit statement, so no rater transaction waits on the
    study row."""
    Study.objects.filter(pk=study_id).update(evidence_version=F("evidence_version") + 1)


def evidence_changed_notify(study_id: int, *, kind: str = "votes") -> None:
    """After commit, counts the change and tells listeners (scoring) that a study's evidence
    changed (`kind`: "votes" for judgments and rulings, "items" when items were imported)."""

    def changed() -> None:
        evidence_version_bump(study_id)
        evidence_changed.send(sender=Study, study_id=study_id, kind=kind)

    transaction.on_commit(changed)


# --- users ----------------------------------------------------------------------------------


def roles_ensure() -> None:
    """Creates the role groups and gives the admin group its Django-admin permissions
    (idempotent)."""
    from django.contrib.auth.models import Permission

    for name in roles.ROLES:
        Group.objects.get_or_create(name=name)
    admin_group = Group.objects.get(name=roles.ADMIN)
    wanted = Q(content_type__app_label__in=roles.ADMIN_VIEW_APPS, codename__startswith="view_")
    for app_label, codename in roles.ADMIN_PERMISSIONS:
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    admin_group.permissions.add(*Permission.objects.filter(wanted))


def password_check(*, password: str, user: AbstractBaseUser | None = None) -> None:
    """Runs Django's password validators (AUTH_PASSWORD_VALIDATORS) on every way a password is
    set. Raises DomainValidationError with the validators' messages under `password`."""
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise DomainValidationError(
            "password refused: " + " ".join(exc.messages), errors={"password": exc.messages}
        ) from exc


@transaction.atomic
def user_create(
    *, username: str, password: str, role: str, email: str = "", exist_ok: bool = False
) -> AbstractBaseUser:
    """Creates a user in one role. Raises DomainValidationError on a bad role, password or name."""
    if role not in roles.ROLES:
        raise DomainValidationError(f"role must be one of {', '.join(roles.ROLES)}, got {role!r}")
    if not password:
        raise DomainValidationError("password must not be empty")
    roles_ensure()
    existing = User.objects.filter(username=username).first()
    if existing is not None:
        if not exist_ok:
            raise ConflictError(f"user {username!r} already exists")
        user = existing
    else:
        user = User(username=username, email=email)
        try:
            user.full_clean(exclude=["password"])
        except ValidationError as exc:
            raise validation_error_from(exc) from exc
    password_check(password=password, user=user)
    user.set_password(password)
    user.is_staff = role == roles.ADMIN
    user.save()
    user.groups.add(Group.objects.get(name=role))
    return user


# --- studies --------------------------------------------------------------------------------

STUDY_EDITABLE_FIELDS = (
    "name",
    "rater_title",
    "task_type",
    "overlap",
    "max_overlap",
    "instructions",
    "status",
    "base_model",
    "tuned_model",
    "gold_rate",
    "min_time_ms",
    "lease_minutes",
    "queue_order",
    "settings",
    "display_strip_prefixes",
)


def study_settings_check(study_settings: Any) -> None:
    """Refuses settings that would send requests where the server may not (a judge address
    outside the allow-list, a key); see `evalplatform.outbound`. Raises DomainValidationError."""
    problems = study_settings_errors(study_settings)
    found = json_problem(study_settings)
    if found is not None and not problems:
        path, reason = found
        problems = {path: [reason]}
    if problems:
        errors = {
            f"settings.{key}" if key else "settings": value for key, value in problems.items()
        }
        raise DomainValidationError(
            "study settings refused: " + "; ".join(m for v in errors.values() for m in v),
            errors=errors,
        )


@transaction.atomic
def study_create(
    *,
    slug: str,
    name: str,
    task_type: str,
    overlap: int = 3,
    created_by: AbstractBaseUser | None = None,
    **fields: Any,
) -> Study:
    """Creates a study (draft unless `status` is given). Raises DomainValidationError."""
    unknown = set(fields) - set(STUDY_EDITABLE_FIELDS)
    if unknown:
        raise DomainValidationError(f"unknown study field(s): {', '.join(sorted(unknown))}")
    if "settings" in fields:
        study_settings_check(fields["settings"])
    fields.setdefault("max_overlap", max(overlap, fields.get("max_overlap") or overlap + 2))
    if Study.objects.filter(slug=slug).exists():
        raise ConflictError(
            f"a study with slug {slug!r} already exists", errors={"slug": ["exists"]}
        )
    if AuditEvent.objects.filter(study_slug=slug).exists():
        # The audit trail of a deleted study is found by its slug: never give it to another.
        raise ConflictError(
            f"slug {slug!r} belonged to a deleted study whose audit trail keeps it",
            errors={"slug": ["used before"]},
        )
    study = Study(
        slug=slug, name=name, task_type=task_type, overlap=overlap, created_by=created_by, **fields
    )
    try:
        study.full_clean()
    except ValidationError as exc:
        raise validation_error_from(exc) from exc
    if study.status in SIGN_OFF_STATES:
        raise ConflictError(f"a study cannot be created {study.status}")
    study.save()
    audit_record(
        entity="study",
        entity_id=study.slug,
        action="created",
        actor=created_by,
        study=study,
        after=study.status,
    )
    study_id = study.pk
    transaction.on_commit(lambda: study_created.send(sender=Study, study_id=study_id))
    return study


@transaction.atomic
def study_update(
    *,
    study: Study,
    actor: AbstractBaseUser | None = None,
    acknowledge_blinding_risk: bool = False,
    reason: str = "",
    **fields: Any,
) -> Study:
    """Updates the editable fields of a study; a status change must be an allowed transition
    and is audited (`reason` goes with it; opening may need `acknowledge_blinding_risk`, see
    `study_transition`). The other fields are saved first, so opening is audited with the
    prefix list sent in the same update. A change of the display prefixes is audited and
    re-runs the blinding audit. Raises DomainValidationError, ConflictError."""
    from annotations.services.blinding import blinding_audit_run

    unknown = set(fields) - set(STUDY_EDITABLE_FIELDS)
    if unknown:
        raise DomainValidationError(f"unknown study field(s): {', '.join(sorted(unknown))}")
    if "settings" in fields:
        study_settings_check(fields["settings"])
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.archived_at is not None:
        raise ConflictError(f"study {study.slug!r} is archived and read-only")
    target = fields.pop("status", None)
    prefixes_before = list(study.display_strip_prefixes or [])
    changed = sorted(key for key, value in fields.items() if getattr(study, key) != value)
    for key, value in fields.items():
        setattr(study, key, value)
    try:
        study.full_clean()
    except ValidationError as exc:
        raise validation_error_from(exc) from exc
    study.save()
    if "overlap" in fields or "max_overlap" in fields:
        # Split items keep the extra votes they asked for under the old bound; without this
        # trim, lowering max_overlap would leave them waiting for votes the study no longer
        # wants (one UPDATE; it locks item rows only, after the study row).
        Item.objects.filter(study=study, extra_votes__gt=study.max_overlap - study.overlap).update(
            extra_votes=study.max_overlap - study.overlap
        )
    if changed:
        audit_record(
            entity="study",
            entity_id=study.slug,
            action="updated",
            actor=actor,
            study=study,
            details={"fields": changed},
        )
    prefixes_after = list(study.display_strip_prefixes or [])
    if prefixes_after != prefixes_before:
        audit_record(
            entity="study",
            entity_id=study.slug,
            action="display_prefixes",
            actor=actor,
            study=study,
            details={"before": prefixes_before, "after": prefixes_after},
        )
        opening = target == StudyStatus.OPEN and study.status != StudyStatus.OPEN
        if not opening:  # opening runs the audit itself
            blinding_audit_run(study=study)
    if target is not None and target != study.status:
        study = study_transition(
            study=study,
            target=target,
            actor=actor,
            reason=reason,
            acknowledge_blinding_risk=acknowledge_blinding_risk,
        )
    return study


@transaction.atomic
def study_delete(*, study: Study, actor: AbstractBaseUser | None = None) -> None:
    """Deletes a study that holds no evidence; its audit trail stays (found by slug), with a
    last "deleted" event. A study with judgments, a training run or sign-offs is archived
    instead (`study_archive`). Raises ConflictError."""
    if Judgment.objects.filter(item__study=study).exists():
        raise ConflictError(
            f"study {study.slug!r} has judgments and cannot be deleted; archive it instead"
        )
    audit_record(
        entity="study",
        entity_id=study.slug,
        action="deleted",
        actor=actor,
        study=study,
        before=study.status,
    )
    try:
        # Inner savepoint: a refused delete rolls back alone, the error reaches the caller.
        with transaction.atomic():
            study.delete()
    except (ProtectedError, RestrictedError) as exc:
        # Records that must outlive the study (a training run, sign-offs) protect it; this app
        # does not know them by name (annotations never imports scoring).
        blocking = getattr(exc, "protected_objects", None) or getattr(exc, "restricted_objects", ())
        kinds = sorted({str(obj._meta.verbose_name) for obj in blocking})  # noqa: SLF001
        raise ConflictError(
            f"study {study.slug!r} is referenced by {', '.join(kinds)} and cannot be deleted; "
            "archive it instead",
            errors={"protected_by": kinds},
        ) from exc


@transaction.atomic
def study_archive(
    *, study: Study, actor: AbstractBaseUser | None = None, reason: str = ""
) -> Study:
    """Archives a study: it keeps its state, items, votes and sign-offs, leaves the study
    lists and becomes read-only. An open (collecting) study is closed first, so raters stop
    being served its pairs. Raises ConflictError when it is archived already."""
    locked = Study.objects.select_for_update().get(pk=study.pk)
    if locked.archived_at is not None:
        raise ConflictError(f"study {locked.slug!r} is archived already")
    if locked.status == StudyStatus.OPEN:
        locked = study_transition(
            study=locked, target=StudyStatus.CLOSED, actor=actor, reason="archived"
        )
    locked.archived_at = timezone.now()
    locked.save(update_fields=["archived_at", "updated_at"])
    audit_record(
        entity="study",
        entity_id=locked.slug,
        action="archived",
        actor=actor,
        study=locked,
        before=locked.status,
        after=locked.status,
        details={"reason": reason} if reason else None,
    )
    return locked


# --- collaborators --------------------------------------------------------------------------


@transaction.atomic
def collaborator_add(
    *, study: Study, username: str, actor: AbstractBaseUser | None
) -> StudyCollaborator:
    """Lets a researcher change a study they do not own (idempotent); audited. Raises
    DomainValidationError (unknown user, not a researcher)."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise DomainValidationError(f"unknown user {username!r}", errors={"username": ["unknown"]})
    if not roles.is_researcher(user):
        raise DomainValidationError(
            f"{username!r} is not a researcher", errors={"username": ["not a researcher"]}
        )
    collaboration, created = StudyCollaborator.objects.get_or_create(
        study=study, user=user, defaults={"added_by": actor}
    )
    if created:
        audit_record(
            entity="study",
            entity_id=study.slug,
            action="collaborator_added",
            actor=actor,
            study=study,
            details={"username": username},
        )
    return collaboration


@transaction.atomic
def collaborator_remove(*, study: Study, username: str, actor: AbstractBaseUser | None) -> None:
    """Raises NotFoundError when `username` does not collaborate on the study."""
    deleted, _ = StudyCollaborator.objects.filter(study=study, user__username=username).delete()
    if not deleted:
        raise NotFoundError(f"{username!r} does not collaborate on {study.slug!r}")
    audit_record(
        entity="study",
        entity_id=study.slug,
        action="collaborator_removed",
        actor=actor,
        study=study,
        details={"username": username},
    )


# --- adjudication -----------------------------------------------------------------------------


@transaction.atomic
def adjudication_record(
    *, study: Study, external_id: str, preference: str, rationale: str, user: AbstractBaseUser
):
    """Records (or replaces) a researcher's ruling on one item. Raises NotFoundError,
    DomainValidationError (unknown preference, empty rationale)."""
    from annotations.models import Adjudication

    item = Item.objects.filter(study=study, external_id=external_id).first()
    if item is None:
        raise NotFoundError(f"no item {external_id!r} in study {study.slug!r}")
    if not preference:
        raise DomainValidationError(
            "choose a ruling (base, tuned, tie or both_bad): none is preselected",
            errors={"preference": ["required"]},
        )
    if preference not in Preference.values:
        raise DomainValidationError(
            f"preference must be one of {', '.join(Preference.values)}",
            errors={"preference": ["invalid"]},
        )
    if not rationale.strip():
        raise DomainValidationError("say why (rationale)", errors={"rationale": ["required"]})
    adjudication, _ = Adjudication.objects.update_or_create(
        item=item,
        defaults={"preference": preference, "rationale": rationale.strip(), "decided_by": user},
    )
    audit_record(
        entity="item",
        entity_id=external_id,
        action="adjudicated",
        actor=user,
        study=study,
        after=preference,
        details={"rationale": rationale.strip()},
    )
    evidence_changed_notify(study.pk)
    return adjudication
