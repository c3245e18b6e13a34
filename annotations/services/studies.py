"""Writes: users, studies, study states and the audit log, rater membership, adjudication."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError

from annotations import roles
from annotations.errors import (
    ConflictError,
    DomainValidationError,
    NotFoundError,
)
from annotations.jsonsafety import json_problem
from annotations.models import (
    SIGN_OFF_STATES,
    STUDY_TRANSITIONS,
    Assignment,
    AssignmentState,
    AuditEvent,
    Item,
    Preference,
    Study,
    StudyRater,
)
from annotations.signals import evidence_changed
from evalplatform.outbound import study_settings_errors

__all__ = [
    "ORDER_MODULUS",
    "STUDY_EDITABLE_FIELDS",
    "adjudication_record",
    "audit_record",
    "evidence_changed_notify",
    "password_check",
    "rater_remove",
    "raters_assign",
    "roles_ensure",
    "status_transition_check",
    "study_create",
    "study_settings_check",
    "study_delete",
    "study_transition",
    "study_update",
    "user_create",
    "validation_error_from",
]

User = get_user_model()

# Prime modulus of the per-rater item permutation ((id * a + b) mod P): a bijection on ids
# below P, so each rater walks the items in an order of their own.
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
) -> Study:
    """Moves a study to `target` along an allowed transition and records it in the audit log."""
    locked = Study.objects.select_for_update().get(pk=study.pk)
    status_transition_check(current=locked.status, target=target, allow_sign_off=allow_sign_off)
    if locked.status == target:
        return locked
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
    return locked


def evidence_changed_notify(study_id: int) -> None:
    """After commit, tells listeners (scoring) that a study's human evidence changed."""
    transaction.on_commit(lambda: evidence_changed.send(sender=Study, study_id=study_id))


# --- users ----------------------------------------------------------------------------------


def roles_ensure() -> None:
    """Creates the role groups (idempotent)."""
    for name in roles.ROLES:
        Group.objects.get_or_create(name=name)


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
    return study


@transaction.atomic
def study_update(*, study: Study, actor: AbstractBaseUser | None = None, **fields: Any) -> Study:
    """Updates the editable fields of a study; a status change must be an allowed transition
    and is audited. Raises DomainValidationError, ConflictError."""
    unknown = set(fields) - set(STUDY_EDITABLE_FIELDS)
    if unknown:
        raise DomainValidationError(f"unknown study field(s): {', '.join(sorted(unknown))}")
    if "settings" in fields:
        study_settings_check(fields["settings"])
    study = Study.objects.select_for_update().get(pk=study.pk)
    target = fields.pop("status", None)
    if target is not None and target != study.status:
        study = study_transition(study=study, target=target, actor=actor)
    for key, value in fields.items():
        setattr(study, key, value)
    try:
        study.full_clean()
    except ValidationError as exc:
        raise validation_error_from(exc) from exc
    study.save()
    return study


@transaction.atomic
def study_delete(*, study: Study) -> None:
    if Study.objects.filter(pk=study.pk, items__judgments__isnull=False).exists():
        raise ConflictError("a study with judgments cannot be deleted; close it instead")
    try:
        study.delete()
    except ProtectedError as exc:
        # A training run (or another protected record) points at it.
        raise ConflictError(
            "the study is referenced by other records (a training run) and cannot be deleted; "
            "close it instead"
        ) from exc


# --- raters ---------------------------------------------------------------------------------


@transaction.atomic
def raters_assign(*, study: Study, usernames: Sequence[str]) -> list[StudyRater]:
    """Adds raters to a study (idempotent). Raises DomainValidationError for unknown users or
    users without the rater role."""
    users = {
        u.username: u
        for u in User.objects.filter(username__in=usernames).prefetch_related("groups")
    }
    missing = [name for name in usernames if name not in users]
    if missing:
        raise DomainValidationError(f"unknown user(s): {', '.join(missing)}")
    not_raters = [name for name, user in users.items() if not roles.is_rater(user)]
    if not_raters:
        raise DomainValidationError(
            f"user(s) without the rater role: {', '.join(sorted(not_raters))}"
        )
    memberships = []
    for name in usernames:
        membership, _ = StudyRater.objects.get_or_create(
            study=study,
            rater=users[name],
            defaults={
                "order_multiplier": 1 + secrets.randbelow(ORDER_MODULUS - 1),
                "order_offset": secrets.randbelow(ORDER_MODULUS),
            },
        )
        memberships.append(membership)
    return memberships


@transaction.atomic
def rater_remove(*, study: Study, username: str) -> None:
    """Removes a rater from a study and releases their live leases; their judgments stay."""
    deleted, _ = StudyRater.objects.filter(study=study, rater__username=username).delete()
    if not deleted:
        raise NotFoundError(f"{username!r} is not a rater of {study.slug!r}")
    Assignment.objects.filter(
        item__study=study, rater__username=username, state=AssignmentState.LEASED
    ).delete()


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
