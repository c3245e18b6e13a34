"""A real Celery worker on Redis scores a study end to end, survives SIGKILL mid-job, and every
score then exists exactly once. Needs PostgreSQL and Redis: runs in CI."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.db import connection

from scoring import services
from scoring.models import ChunkState, JobStatus, OutputScore, ScoringChunk, ScoringJob
from tests.factories import make_study
from tests.scoring.worker_helpers import celery_worker, clean_broker, stop  # noqa: F401 - fixture

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

VISIBILITY_TIMEOUT = 4
# The killed worker's chunk keeps its lease until it runs out, and kombu looks for overdue
# tasks only every ~100 s by default: both as short as the visibility timeout, so the
# redelivery comes within seconds (it took 100 s).
CHUNK_LEASE_SECONDS = 4
UNACKED_RESTORE_SECONDS = 1


def start_worker(log_path: Path) -> subprocess.Popen:
    # A short visibility timeout, so a task held by a killed worker is delivered again within
    # the test.
    return celery_worker(
        log_path,
        env={
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "CHUNK_LEASE_SECONDS": str(CHUNK_LEASE_SECONDS),
            "CELERY_UNACKED_RESTORE_SECONDS": str(UNACKED_RESTORE_SECONDS),
        },
    )


def wait_for(predicate, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(message)


def test_worker_scores_study_and_recovers_from_sigkill(clean_broker, tmp_path) -> None:  # noqa: F811
    assert connection.vendor == "postgresql"
    study = make_study(items=1000, overlap=1)
    job = services.scoring_job_start(study=study)  # enqueued on commit: no outer transaction
    chunks = ScoringChunk.objects.filter(job=job)
    log_path = tmp_path / "worker.log"
    worker = start_worker(log_path)
    try:
        wait_for(
            lambda: chunks.filter(state=ChunkState.DONE).exists(),
            120,
            f"no chunk finished; worker log:\n{log_path.read_text(errors='replace')[-3000:]}",
        )
        # Kill the whole worker (parent and child) without warning, mid-job.
        stop(worker, signal.SIGKILL)
        remaining = chunks.exclude(state=ChunkState.DONE).count()
        assert remaining > 0, "the job finished before the kill; make it longer"
        worker = start_worker(log_path)
        wait_for(
            lambda: ScoringJob.objects.get(pk=job.pk).finished_at is not None,
            240,
            f"job did not finish after restart; log:\n{log_path.read_text(errors='replace')[-3000:]}",
        )
    finally:
        stop(worker)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert not chunks.exclude(state=ChunkState.DONE).exists()
    scores = OutputScore.objects.filter(item__study=study)
    per_key = scores.values("output", "metric", "version").distinct().count()
    assert scores.count() == per_key
    # Every output has every item metric for generation with references, exactly once.
    assert scores.filter(metric="rougeL").count() == 1000 * 2
    assert scores.filter(metric="exact_match").count() == 1000 * 2
