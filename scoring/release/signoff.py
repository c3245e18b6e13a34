"""Writes: sign-offs, and what happens when the evidence behind them changes.

A sign-off stores the SHA-256 and the canonical JSON of the report it approved and never changes.
When the evidence later changes, the hash differs and the sign-off is marked stale (an audited
`SignOffInvalidation`); a signed-off or rejected study returns to reconciling.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction

from annotations import roles
from annotations import services as annotation_services
from annotations.errors import (
    ConflictError,
    DomainPermissionError,
    DomainValidationError,
)
from annotations.models import Study, StudyStatus
from scoring.models import (
    SignOff,
    SignOffDecision,
    SignOffInvalidation,
    TrainingRun,
)

__all__ = [
    "evidence_check",
    "evidence_check_in_thread",
    "evidence_check_schedule",
    "run_of_holdout",
    "signoff_record",
    "signoffs_mark_stale",
]


from scoring.release.evidence import evidence_json, evidence_sha256, release_report
from scoring.release.webhooks import decision_notify_if_changed

logger = logging.getLogger(__name__)


@transaction.atomic
def signoff_record(
    *, study: Study, actor: AbstractBaseUser, decision: str, comment: str
) -> SignOff:
    """A release owner approves or rejects the current evidence of a study that is ready for
    sign-off. Approval is refused while a required criterion fails. With enough distinct
    approvals of the same report the study is signed off; a rejection rejects it.

    Raises DomainPermissionError, DomainValidationError, ConflictError."""
    if not roles.is_release_owner(actor):
        raise DomainPermissionError("only a release owner may sign off")
    if decision not in SignOffDecision.values:
        raise DomainValidationError(
            "decision must be approve or reject", errors={"decision": ["invalid"]}
        )
    if not comment.strip():
        raise DomainValidationError("a sign-off needs a comment", errors={"comment": ["required"]})
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.status != StudyStatus.READY:
        raise ConflictError(
            f"study {study.slug!r} is {study.status}; only a study ready for sign-off can be signed"
        )
    report = release_report(study=study)
    release = report["release"]
    if decision == SignOffDecision.APPROVE and release["verdict"] != "pass":
        failing = [c["name"] for c in release["criteria"] if c["required"] and not c["passed"]]
        raise ConflictError(
            f"the evidence does not hold: {', '.join(failing)}", errors={"criteria": failing}
        )
    sha = evidence_sha256(report)
    run = TrainingRun.objects.filter(study=study).first()
    try:
        with transaction.atomic():
            signoff = SignOff.objects.create(
                study=study,
                run=run,
                decision=decision,
                comment=comment.strip(),
                signed_by=actor,
                report_sha256=sha,
                report_json=evidence_json(report),
                policy=release["policy"],
                criteria=release["criteria"],
            )
    except IntegrityError as exc:
        raise ConflictError("you already signed this version of the evidence") from exc
    annotation_services.audit_record(
        entity="signoff",
        entity_id=signoff.pk,
        action=decision,
        actor=actor,
        study=study,
        details={"report_sha256": sha, "comment": comment.strip()},
    )
    if decision == SignOffDecision.REJECT:
        annotation_services.study_transition(
            study=study,
            target=StudyStatus.REJECTED,
            actor=actor,
            reason="rejected at sign-off",
            allow_sign_off=True,
        )
    else:
        approvers = (
            SignOff.objects.filter(study=study, report_sha256=sha, decision=SignOffDecision.APPROVE)
            .filter(invalidation__isnull=True)
            .values("signed_by")
            .distinct()
            .count()
        )
        if approvers >= release["policy"]["required_approvals"]:
            annotation_services.study_transition(
                study=study,
                target=StudyStatus.SIGNED_OFF,
                actor=actor,
                reason=f"{approvers} approval(s)",
                allow_sign_off=True,
            )
    if run is not None:
        transaction.on_commit(lambda: decision_notify_if_changed(run_id=run.pk))
    return signoff


def signoffs_mark_stale(*, study: Study, current_sha: str) -> int:
    """Records every live sign-off whose report no longer matches the evidence as stale; a
    signed-off or rejected study goes back to reconciling. Returns how many went stale."""
    stale = 0
    with transaction.atomic():
        for signoff in SignOff.objects.filter(study=study, invalidation__isnull=True).exclude(
            report_sha256=current_sha
        ):
            SignOffInvalidation.objects.get_or_create(
                signoff=signoff,
                defaults={
                    "new_report_sha256": current_sha,
                    "reason": "the evidence changed after this sign-off",
                },
            )
            annotation_services.audit_record(
                entity="signoff",
                entity_id=signoff.pk,
                action="stale",
                study=study,
                details={"approved_sha256": signoff.report_sha256, "current_sha256": current_sha},
            )
            stale += 1
        if stale:
            locked = Study.objects.select_for_update().get(pk=study.pk)
            if locked.status in (StudyStatus.SIGNED_OFF, StudyStatus.REJECTED):
                annotation_services.study_transition(
                    study=locked,
                    target=StudyStatus.RECONCILING,
                    reason="evidence changed after sign-off",
                )
    return stale


def evidence_check(*, study_id: int) -> None:
    """After the evidence of a study changed: record the sequential look that is due, mark
    stale sign-offs, notify the pipeline."""
    from scoring.release.sequential import sequential_looks_record

    study = Study.objects.filter(pk=study_id).first()
    if study is None:
        return
    sequential_looks_record(study=study)
    if SignOff.objects.filter(study=study, invalidation__isnull=True).exists():
        signoffs_mark_stale(study=study, current_sha=evidence_sha256(release_report(study=study)))
    run = TrainingRun.objects.filter(study=study).first()
    if run is not None and run.webhook_url:
        decision_notify_if_changed(run_id=run.pk)


def run_of_holdout(study_id: int) -> int | None:
    """The study of the run whose general hold-out set this study is, if any: the hold-out's
    scores are that run's forgetting evidence. It runs after every judgment, so it is one
    plain statement (an ORM queryset cost more to build than the database spent answering)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT study_id FROM {TrainingRun._meta.db_table} WHERE holdout_study_id = %s",  # noqa: S608 - names from model metadata
            [study_id],
        )
        row = cursor.fetchone()
        return row[0] if row else None


def evidence_check_schedule(*, study_id: int) -> None:
    """Batches checks: one per study per debounce window, run after the window closes so it
    sees every change made during it. Every study is checked (its sequential looks are
    recorded there); a run's hold-out set also makes its run's study checked.

    This runs after every judgment, so it must stay cheap: one statement and one cache add.
    With a broker the check is a task with a countdown. In-process (no broker) a countdown does
    not wait, so the check runs in a timer thread at the end of the window (a check inside the
    rater's request would cost a study-wide aggregate per judgment). A window of 0 checks at
    once, in the caller (the tests)."""
    parent = run_of_holdout(study_id)
    if parent is not None:
        annotation_services.evidence_version_bump(parent)
        evidence_check_schedule(study_id=parent)
    from scoring.tasks import check_evidence

    window = settings.EVIDENCE_CHECK_DEBOUNCE_SECONDS
    if window <= 0:
        check_evidence.delay(study_id)  # in-process mode runs it here and now
        return
    if not cache.add(f"evidence-check:{study_id}", 1, timeout=window):
        return
    if check_evidence.app.conf.task_always_eager:
        timer = threading.Timer(window, evidence_check_in_thread, args=[study_id])
        timer.daemon = True
        timer.start()
        return
    check_evidence.apply_async(args=[study_id], countdown=window)


def evidence_check_in_thread(study_id: int) -> None:
    """The in-process evidence check, off the request thread; its connection is closed after."""
    from django.db import connections

    try:
        evidence_check(study_id=study_id)
    except Exception:  # a background thread has nobody to raise to: log it
        logger.exception("evidence check of study %s failed", study_id)
    finally:
        connections.close_all()
