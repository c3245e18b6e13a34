"""A worker killed with SIGKILL mid-job does not stall the job until the broker's visibility
timeout: the chunk's lease runs out, the sweep (Celery beat, here embedded in the worker with
`-B`) enqueues it again, and a new worker finishes the job with every score written exactly
once. The visibility timeout is an hour here, so only the lease sweep can recover in time.
Needs PostgreSQL and Redis: runs in CI."""

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

LEASE_SECONDS = 3
SWEEP_SECONDS = 2
# The bound the settings promise (lease + sweep), plus slack for starting a worker and
# finishing the remaining chunks on a slow CI machine; far below the hour-long visibility timeout.
RECOVERY_BOUND_SECONDS = 120


def start_worker(log_path: Path, tmp_path: Path) -> subprocess.Popen:
    return celery_worker(
        log_path,
        env={
            "CELERY_VISIBILITY_TIMEOUT": "3600",
            "CHUNK_LEASE_SECONDS": str(LEASE_SECONDS),
            "CHUNK_SWEEP_SECONDS": str(SWEEP_SECONDS),
        },
        worker_args=("-B", "-s", str(tmp_path / "beat-schedule")),
    )


def wait_for(predicate, timeout: float, message) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(message())


def test_killed_workers_chunk_is_leased_out_again_within_the_bound(clean_broker, tmp_path) -> None:  # noqa: F811
    assert connection.vendor == "postgresql"
    study = make_study(items=1000, overlap=1)
    job = services.scoring_job_start(study=study)  # enqueued on commit: no outer transaction
    chunks = ScoringChunk.objects.filter(job=job)
    log_path = tmp_path / "worker.log"

    def log_tail() -> str:
        return log_path.read_text(errors="replace")[-3000:]

    worker = start_worker(log_path, tmp_path)
    try:
        # Kill while a chunk is running: it holds a lease and is not done.
        wait_for(
            lambda: (
                chunks.filter(state=ChunkState.DONE).exists()
                and chunks.filter(state=ChunkState.PENDING, lease_until__isnull=False).exists()
            ),
            120,
            lambda: f"no chunk finished while another ran; worker log:\n{log_tail()}",
        )
        stop(worker, signal.SIGKILL)
        orphan_ids = set(
            chunks.filter(state=ChunkState.PENDING, lease_until__isnull=False).values_list(
                "pk", flat=True
            )
        )
        assert orphan_ids, "the job finished before the kill; make it longer"
        killed_at = time.monotonic()
        worker = start_worker(log_path, tmp_path)
        wait_for(
            lambda: ScoringJob.objects.get(pk=job.pk).finished_at is not None,
            RECOVERY_BOUND_SECONDS,
            lambda: f"job did not finish after restart; log:\n{log_tail()}",
        )
        recovered_in = time.monotonic() - killed_at
    finally:
        stop(worker)
    assert recovered_in < RECOVERY_BOUND_SECONDS
    assert "re-enqueued" in log_path.read_text(errors="replace")
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert not chunks.exclude(state=ChunkState.DONE).exists()
    assert not chunks.filter(lease_until__isnull=False).exists()
    scores = OutputScore.objects.filter(item__study=study)
    per_key = scores.values("output", "metric", "version").distinct().count()
    assert scores.count() == per_key
    assert scores.filter(metric="rougeL").count() == 1000 * 2
    assert scores.filter(metric="exact_match").count() == 1000 * 2
