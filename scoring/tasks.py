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
