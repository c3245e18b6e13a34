"""Release: training-run submission, the evidence detectors, the release policy, the sign-off
gate, stale approvals and pipeline webhooks.

A run creates its study (and a draft study for the general hold-out set), starts pre-scoring
and opens the human study. The decision evaluates the policy's criteria against one report
(`release_report`: the research report plus the detectors and criteria), identified by the
SHA-256 of its canonical JSON; a sign-off stores that hash and that JSON and never changes.
When the evidence later changes, the hash differs and the sign-off is marked stale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from annotations import roles
from annotations import services as annotation_services
from annotations.errors import (
    ConflictError,
    DomainPermissionError,
    DomainValidationError,
    NotFoundError,
)
from annotations.importers import jsonl_record_to_item
from annotations.models import Study, StudyStatus, TaskType
from scoring.models import (
    ReleasePolicy,
    SignOff,
    SignOffDecision,
    SignOffInvalidation,
    StudyScore,
    TrainingRun,
    WebhookDelivery,
)
from scoring.reports import build_report, canonical_json

logger = logging.getLogger(__name__)
User = get_user_model()

POLICY_FIELDS = tuple(settings.RELEASE_POLICY_DEFAULTS)
MAX_SUBMISSION_ERRORS = 50


# --- policy ---------------------------------------------------------------------------------


def policy_get(*, study: Study) -> ReleasePolicy:
    policy, _ = ReleasePolicy.objects.get_or_create(
        study=study, defaults=dict(settings.RELEASE_POLICY_DEFAULTS)
    )
    return policy


def policy_as_dict(policy: ReleasePolicy) -> dict[str, Any]:
    return {field: getattr(policy, field) for field in POLICY_FIELDS}


@transaction.atomic
def policy_update(*, study: Study, actor: AbstractBaseUser, **fields: Any) -> ReleasePolicy:
    """Admins edit a study's release policy; audited. Raises DomainPermissionError,
    DomainValidationError."""
    if not roles.is_admin(actor):
        raise DomainPermissionError("only an admin may edit a release policy")
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        raise DomainValidationError(f"unknown policy field(s): {', '.join(sorted(unknown))}")
    if "required_approvals" in fields and fields["required_approvals"] not in (1, 2, 3):
        raise DomainValidationError(
            "required_approvals must be 1, 2 or 3", errors={"required_approvals": ["1-3"]}
        )
    policy = policy_get(study=study)
    before = policy_as_dict(policy)
    for key, value in fields.items():
        setattr(policy, key, value)
    policy.save()
    annotation_services.audit_record(
        entity="policy",
        entity_id=study.slug,
        action="updated",
        actor=actor,
        study=study,
        details={"before": before, "after": policy_as_dict(policy)},
    )
    return policy


# --- detectors and metric kinds -------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """Dataclass output as JSON data: tuples become lists, NaN and infinities become null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def overfitting_section(run: TrainingRun | None, policy: ReleasePolicy) -> dict[str, Any]:
    from scoring.stats.training import detect_overfitting, parse_training_log

    if run is None or not run.training_log:
        return {"evaluated": False, "flagged": None, "reasons": ["no training log submitted"]}
    log = parse_training_log(run.training_log["raw"], source="training_log")
    report = detect_overfitting(log)
    data = json_safe(asdict(report))
    data["evaluated"] = True
    return data


def forgetting_section(run: TrainingRun | None, policy: ReleasePolicy) -> dict[str, Any]:
    from scoring.selectors import study_scores
    from scoring.stats.forgetting import MetricDelta, detect_forgetting

    if run is None or run.holdout_study is None:
        return {
            "evaluated": False,
            "flagged": None,
            "reasons": ["no general hold-out set submitted"],
        }
    holdout = run.holdout_study
    perplexity = {
        row.system: row.values.get("corpus_perplexity_token_weighted")
        for row in StudyScore.objects.filter(study=run.study, metric="model_perplexity_holdout")
    }
    deltas = {
        m.metric: MetricDelta(
            base=m.base,
            tuned=m.tuned,
            delta=m.delta,
            ci_low=m.delta_ci95[0] if m.delta_ci95 else float("nan"),
            ci_high=m.delta_ci95[1] if m.delta_ci95 else float("nan"),
            lower_is_better=m.lower_is_better,
        )
        for m in study_scores(study=holdout, n_resamples=1_000).metrics
    }
    report = detect_forgetting(
        perplexity_base=perplexity.get("base"),
        perplexity_tuned=perplexity.get("tuned"),
        metric_deltas=deltas,
        max_perplexity_increase=policy.max_forgetting_perplexity_increase,
        max_metric_drop=policy.max_forgetting_metric_drop,
    )
    return json_safe(asdict(report))


def metric_kinds_present(
    report: dict[str, Any], overfitting: dict[str, Any]
) -> dict[str, list[str]]:
    """The three kinds of evidence the policy asks for, with the metrics that provide each."""
    from scoring.metrics import registry

    known = {m.name: m.kind for m in registry.all_metrics()}
    task, general = [], []
    for name in list(report.get("metrics", {})) + [
        c["metric"].split("@")[0] for c in report.get("corpus_metrics", [])
    ]:
        base_name = name.split(":")[0]
        if "perplexity" in base_name:
            general.append(name)
        elif known.get(base_name) == "task":
            task.append(name)
        elif known.get(base_name) == "general_quality":
            general.append(name)
    if report.get("judge"):
        general.append("llm_judge")
    overfit = ["train_validation_gap"] if overfitting.get("evaluated") else []
    return {
        "task": sorted(set(task)),
        "general_quality": sorted(set(general)),
        "overfitting": overfit,
    }


# --- the release report and decision --------------------------------------------------------


def criterion(
    name: str, passed: bool | None, evidence: str, *, required: bool = True
) -> dict[str, Any]:
    return {"name": name, "passed": passed, "required": required, "evidence": evidence}


def evaluate_criteria(
    report: dict[str, Any], release: dict[str, Any], policy: ReleasePolicy
) -> list[dict]:
    votes = report.get("judgments", 0)
    alpha = report.get("agreement", {}).get("krippendorff_alpha")
    ci = report.get("win_rate", {}).get("ci95")
    judge_human = report.get("judge_human") or {}
    kinds = release["metric_kinds"]
    overfit = release["overfitting"]
    forget = release["forgetting"]
    rows = [
        criterion(
            "human_votes",
            votes >= policy.min_human_votes,
            f"{votes} votes (minimum {policy.min_human_votes})",
        ),
        criterion(
            "agreement",
            alpha is not None and alpha >= policy.min_krippendorff_alpha,
            f"Krippendorff's alpha {alpha:.3f} (minimum {policy.min_krippendorff_alpha})"
            if alpha is not None
            else "Krippendorff's alpha not available (needs items with two or more votes)",
        ),
        criterion(
            "win_rate_ci_above_half",
            bool(ci) and ci[0] > 0.5,
            f"tuned win rate 95% CI [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "no win-rate CI yet",
            required=policy.require_win_ci_above_half,
        ),
        criterion(
            "no_forgetting",
            forget.get("evaluated") and not forget.get("flagged"),
            "; ".join(forget.get("reasons") or []) or "no forgetting beyond the thresholds",
        ),
        criterion(
            "no_overfitting",
            overfit.get("evaluated") and not overfit.get("flagged"),
            "; ".join(overfit.get("reasons") or []) or "no overfitting signal",
            required=policy.forbid_overfitting,
        ),
    ]
    if policy.min_judge_human_agreement is not None:
        agreement = judge_human.get("agreement")
        rows.append(
            criterion(
                "judge_human_agreement",
                agreement is not None and agreement >= policy.min_judge_human_agreement,
                f"judge-human agreement {agreement:.3f} "
                f"(minimum {policy.min_judge_human_agreement})"
                if agreement is not None
                else "no judge verdicts to compare",
            )
        )
    missing = [k for k, v in kinds.items() if not v]
    rows.append(
        criterion(
            "three_metric_kinds",
            not missing,
            "present: "
            + "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in kinds.items())
            + (f" (missing: {', '.join(missing)})" if missing else ""),
            required=policy.require_three_metric_kinds,
        )
    )
    return rows


def release_report(*, study: Study) -> dict[str, Any]:
    """The report a release owner approves: the research report plus the detectors, the
    metric kinds, the policy and every criterion."""
    run = TrainingRun.objects.filter(study=study).select_related("holdout_study", "study").first()
    policy = policy_get(study=study)
    report = build_report(study=study)
    overfitting = overfitting_section(run, policy)
    release = {
        "run_id": run.run_id if run else None,
        "overfitting": overfitting,
        "forgetting": forgetting_section(run, policy),
        "metric_kinds": metric_kinds_present(report, overfitting),
        "policy": policy_as_dict(policy),
    }
    release["criteria"] = evaluate_criteria(report, release, policy)
    release["verdict"] = (
        "pass" if all(c["passed"] for c in release["criteria"] if c["required"]) else "fail"
    )
    report["release"] = release
    return report


def evidence_json(report: dict[str, Any]) -> str:
    """Canonical JSON of the evidence: the study's workflow state is not evidence, so moving
    it (e.g. ready -> signed_off) never changes the hash."""
    evidence = dict(report)
    evidence["study"] = {k: v for k, v in report.get("study", {}).items() if k != "status"}
    return canonical_json(evidence)


def evidence_sha256(report: dict[str, Any]) -> str:
    return hashlib.sha256(evidence_json(report).encode("utf-8")).hexdigest()


def signoff_rows(study: Study) -> list[dict[str, Any]]:
    rows = []
    for s in SignOff.objects.filter(study=study).select_related("signed_by").order_by("id"):
        invalidation = SignOffInvalidation.objects.filter(signoff=s).first()
        rows.append(
            {
                "id": s.pk,
                "decision": s.decision,
                "by": s.signed_by.username,
                "comment": s.comment,
                "report_sha256": s.report_sha256,
                "created_at": s.created_at.isoformat(),
                "stale": invalidation is not None,
                "stale_reason": invalidation.reason if invalidation else None,
            }
        )
    return rows


def decision_get(*, study: Study, actor: AbstractBaseUser | None = None) -> dict[str, Any]:
    """Each criterion with its evidence, the overall verdict, the sign-offs (stale ones marked)
    and the study's state. Reading it also marks approvals stale when the evidence moved."""
    report = release_report(study=study)
    sha = evidence_sha256(report)
    signoffs_mark_stale(study=study, current_sha=sha)
    study.refresh_from_db()
    release = report["release"]
    return {
        "study": study.slug,
        "run_id": release["run_id"],
        "state": study.status,
        "verdict": release["verdict"],
        "criteria": release["criteria"],
        "overfitting": release["overfitting"],
        "forgetting": release["forgetting"],
        "metric_kinds": release["metric_kinds"],
        "policy": release["policy"],
        "report_sha256": sha,
        "signoffs": signoff_rows(study),
        "summary": report.get("verdict", {}).get("summary"),
    }


# --- sign-off -------------------------------------------------------------------------------


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
    """After the evidence of a study changed: mark stale sign-offs, notify the pipeline."""
    study = Study.objects.filter(pk=study_id).first()
    if study is None:
        return
    if SignOff.objects.filter(study=study, invalidation__isnull=True).exists():
        signoffs_mark_stale(study=study, current_sha=evidence_sha256(release_report(study=study)))
    run = TrainingRun.objects.filter(study=study).first()
    if run is not None and run.webhook_url:
        decision_notify_if_changed(run_id=run.pk)


def evidence_has_listeners(study_id: int) -> bool:
    """Whether a training run or a sign-off depends on this study's evidence. It runs after
    every judgment, so it is one plain statement (an ORM queryset cost more to build than the
    database spent answering it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {TrainingRun._meta.db_table} WHERE study_id = %s) "  # noqa: S608 - names from model metadata
            f"OR EXISTS (SELECT 1 FROM {SignOff._meta.db_table} WHERE study_id = %s)",
            [study_id, study_id],
        )
        return bool(cursor.fetchone()[0])


def evidence_check_schedule(*, study_id: int) -> None:
    """Batches checks: one per study per debounce window, run after the window closes so it
    sees every change made during it."""
    if not evidence_has_listeners(study_id):
        return
    window = settings.EVIDENCE_CHECK_DEBOUNCE_SECONDS
    if not cache.add(f"evidence-check:{study_id}", 1, timeout=window):
        return
    from scoring.tasks import check_evidence

    check_evidence.apply_async(args=[study_id], countdown=window)


# --- webhooks -------------------------------------------------------------------------------


def decision_notify_if_changed(*, run_id: int) -> WebhookDelivery | None:
    """Queues a webhook call when the run's decision (state or verdict) changed since the last
    notification."""
    run = TrainingRun.objects.select_related("study").filter(pk=run_id).first()
    if run is None or not run.webhook_url:
        return None
    decision = decision_get(study=run.study)
    summary = {
        "state": decision["state"],
        "verdict": decision["verdict"],
        "report_sha256": decision["report_sha256"],
    }
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.last_notified_decision == summary:
            return None
        locked.last_notified_decision = summary
        locked.save(update_fields=["last_notified_decision"])
        delivery = WebhookDelivery.objects.create(
            run=locked,
            payload={
                "event": "decision_changed",
                "run_id": locked.run_id,
                "study": run.study.slug,
                **summary,
                "criteria": [
                    {k: c[k] for k in ("name", "passed", "required")} for c in decision["criteria"]
                ],
                "decision_url": f"/api/v1/runs/{locked.run_id}/decision/",
            },
        )
        delivery_id = delivery.pk
        transaction.on_commit(lambda: enqueue_webhook(delivery_id))
    return delivery


def enqueue_webhook(delivery_id: int) -> None:
    from scoring.tasks import deliver_webhook

    deliver_webhook.delay(delivery_id)


class WebhookTransientError(Exception):
    """The receiver answered 5xx/429 or could not be reached: retry with backoff."""


def webhook_deliver(*, delivery_id: int, final_attempt: bool) -> None:
    """POSTs a delivery's JSON to the run's webhook URL; records every attempt's outcome."""
    import httpx

    delivery = WebhookDelivery.objects.select_related("run").filter(pk=delivery_id).first()
    if delivery is None or delivery.status == "delivered":
        return
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=delivery.attempts + 1)
    try:
        response = httpx.post(
            delivery.run.webhook_url,
            json=delivery.payload,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            headers={"User-Agent": f"evalplatform-webhook/{delivery.run.run_id}"},
        )
    except httpx.HTTPError as exc:
        record_webhook_failure(delivery, None, f"{type(exc).__name__}: {exc}", final_attempt)
        raise WebhookTransientError(str(exc)) from exc
    if response.status_code >= 500 or response.status_code == 429:
        record_webhook_failure(delivery, response.status_code, response.text[:500], final_attempt)
        raise WebhookTransientError(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        # The receiver refused the payload: retrying the same request cannot help.
        record_webhook_failure(delivery, response.status_code, response.text[:500], True)
        return
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="delivered",
        last_status_code=response.status_code,
        last_error="",
        delivered_at=timezone.now(),
    )


def record_webhook_failure(
    delivery: WebhookDelivery, code: int | None, error: str, final: bool
) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="failed" if final else "pending", last_status_code=code, last_error=error[:2_000]
    )


# --- run submission -------------------------------------------------------------------------


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
        training_log={"raw": fields["training_log"]} if log is not None else {},
        webhook_url=fields.get("webhook_url", ""),
        created_by=actor,
    )
    policy_get(study=study)
    annotation_services.audit_record(
        entity="run",
        entity_id=run.run_id,
        action="submitted",
        actor=actor,
        study=study,
        after="open",
        details={"items": len(items), "holdout": len(holdout)},
    )
    annotation_services.study_transition(
        study=study, target=StudyStatus.OPEN, actor=actor, reason="run submitted"
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
