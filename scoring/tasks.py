"""Celery tasks: thin wrappers that take a chunk id and call the idempotent service.

Two queues: `cpu` (metrics) and `gpu` (perplexity, local judge; concurrency 1 so a model loads
once per worker process). `acks_late` with `reject_on_worker_lost`: a chunk whose worker dies is
delivered again, and the service writes nothing twice.
"""

from __future__ import annotations

from celery import shared_task

from scoring.errors import TransientScoringError

TASK_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (TransientScoringError,),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "max_retries": 5,
    "soft_time_limit": 25 * 60,
    "time_limit": 30 * 60,
}


@shared_task(name="scoring.run_chunk", **TASK_OPTIONS)
def run_cpu_chunk(self, chunk_id: int) -> None:
    from scoring.services import chunk_run

    chunk_run(chunk_id=chunk_id, final_attempt=self.request.retries >= self.max_retries)


@shared_task(name="scoring.gpu.run_chunk", **TASK_OPTIONS)
def run_gpu_chunk(self, chunk_id: int) -> None:
    from scoring.services import chunk_run

    chunk_run(chunk_id=chunk_id, final_attempt=self.request.retries >= self.max_retries)


@shared_task(
    name="scoring.build_export",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=25 * 60,
    time_limit=30 * 60,
)
def build_export(self, export_id: int) -> None:
    from scoring.exports import export_build

    export_build(export_id=export_id)


@shared_task(
    name="scoring.rebuild_report",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=25 * 60,
    time_limit=30 * 60,
)
def rebuild_report(study_id: int, options: dict) -> None:
    from scoring.report_builds import report_build
    from scoring.reports import ReportOptions

    report_build(
        study_id=study_id,
        options=ReportOptions(exclude_flagged_raters=bool(options.get("exclude_flagged_raters"))),
    )


@shared_task(
    name="scoring.check_evidence", acks_late=True, soft_time_limit=10 * 60, time_limit=15 * 60
)
def check_evidence(study_id: int) -> None:
    from scoring.release import evidence_check

    evidence_check(study_id=study_id)


@shared_task(
    name="scoring.deliver_webhook",
    bind=True,
    acks_late=True,
    max_retries=8,
    soft_time_limit=60,
    time_limit=120,
)
def deliver_webhook(self, delivery_id: int) -> None:
    from scoring.release import WebhookTransientError, webhook_deliver

    if self.request.is_eager:
        # In-process mode (no broker): a few immediate tries instead of sleeping in a request.
        for attempt in range(3):
            try:
                webhook_deliver(delivery_id=delivery_id, final_attempt=attempt == 2)
                return
            except WebhookTransientError:
                continue
        return
    try:
        webhook_deliver(
            delivery_id=delivery_id, final_attempt=self.request.retries >= self.max_retries
        )
    except WebhookTransientError as exc:
        if self.request.retries >= self.max_retries:
            return
        # Exponential backoff: 10 s, 20 s, 40 s ... capped at 30 minutes.
        raise self.retry(exc=exc, countdown=min(10 * 2**self.request.retries, 1_800)) from exc
