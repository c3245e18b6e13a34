"""Celery tasks: thin wrappers that take a chunk id and call the idempotent service.

Three queues: `cpu` (metrics), `gpu` (perplexity, local judge; concurrency 1 so a model loads
once per worker process) and `sandbox` (model-written code, run inside bubblewrap by a worker
that holds nothing else). `acks_late` with `reject_on_worker_lost`: a chunk whose worker dies is
delivered again, and the service writes nothing twice; the lease sweep (`sweep_chunks`, run by
Celery beat) enqueues such a chunk again long before the broker's visibility timeout.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

from scoring.errors import TransientScoringError

logger = logging.getLogger(__name__)

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


def run_chunk(task, chunk_id: int) -> None:
    from scoring.services import chunk_run

    # A worker keeps the chunk's lease alive; an eager (in-process) run needs no lease sweep.
    chunk_run(
        chunk_id=chunk_id,
        final_attempt=task.request.retries >= task.max_retries,
        heartbeat=not task.request.is_eager,
    )


@shared_task(name="scoring.run_chunk", **TASK_OPTIONS)
def run_cpu_chunk(self, chunk_id: int) -> None:
    run_chunk(self, chunk_id)


@shared_task(name="scoring.gpu.run_chunk", **TASK_OPTIONS)
def run_gpu_chunk(self, chunk_id: int) -> None:
    run_chunk(self, chunk_id)


@shared_task(name="scoring.sandbox.run_chunk", **TASK_OPTIONS)
def run_sandbox_chunk(self, chunk_id: int) -> None:
    run_chunk(self, chunk_id)


def task_for_kind(kind: str):
    """The task (hence queue, see CELERY_TASK_ROUTES) that runs a chunk of `kind`."""
    from scoring.models import ChunkKind
    from scoring.services import GPU_KINDS

    if kind == ChunkKind.CODE_EXEC:
        return run_sandbox_chunk
    return run_gpu_chunk if kind in GPU_KINDS else run_cpu_chunk


@worker_ready.connect
def report_code_sandbox(sender=None, **kwargs) -> None:
    """A worker serving the sandbox queue says at start whether the sandbox works (the metric
    probes again, once per process, before the first run)."""
    consumer = getattr(sender, "task_consumer", None)
    queues = {queue.name for queue in getattr(consumer, "queues", [])}
    if "sandbox" not in queues:
        return
    from scoring.metrics.code_exec import sandbox_unavailable_reason

    reason = sandbox_unavailable_reason()
    if reason is None:
        logger.info("code sandbox: bubblewrap works")
    else:
        logger.error("code sandbox unavailable, code execution will be refused: %s", reason)


@shared_task(name="scoring.sweep_chunks", ignore_result=True, soft_time_limit=60, time_limit=120)
def sweep_chunks() -> int:
    """Enqueues again the chunks whose worker died (their lease ran out); run by Celery beat."""
    from scoring.services import chunks_sweep

    return chunks_sweep()


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
