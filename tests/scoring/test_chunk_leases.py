"""Chunk leases: a running chunk is leased, a dead worker's chunk is enqueued again by the
sweep exactly once, a duplicate delivery of a leased chunk does nothing, code execution chunks
go to the sandbox queue, and a study's settings cannot switch the sandbox off."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotations import services as annotation_services
from annotations.models import Item, Output
from scoring import services, tasks
from scoring.errors import TransientScoringError
from scoring.metrics import code_exec
from scoring.metrics.code_exec import ALLOW_UNSANDBOXED_KEY, sandbox_unavailable_reason
from scoring.models import ChunkKind, ChunkState, JobStatus, OutputScore, ScoringChunk, ScoringJob
from tests.factories import make_study

pytestmark = pytest.mark.django_db


def pending_job(items: int = 3) -> tuple[ScoringJob, ScoringChunk]:
    study = make_study(items=items, overlap=1)
    job = ScoringJob.objects.create(study=study, status=JobStatus.RUNNING)
    item_ids = list(study.items.order_by("id").values_list("id", flat=True))
    chunk = ScoringChunk.objects.create(
        job=job, kind=ChunkKind.ITEM_METRICS, index=0, item_ids=item_ids
    )
    return job, chunk


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    calls: list[tuple[int, str]] = []
    monkeypatch.setattr(services, "enqueue_chunks", lambda refs: calls.extend(refs))
    return calls


def test_sweep_requeues_expired_leases_once(enqueued, settings) -> None:
    settings.CHUNK_LEASE_SECONDS = 30
    _, dead = pending_job()
    _, alive = pending_job()
    _, never_started = pending_job()
    now = timezone.now()
    ScoringChunk.objects.filter(pk=dead.pk).update(lease_until=now - timedelta(seconds=1))
    ScoringChunk.objects.filter(pk=alive.pk).update(lease_until=now + timedelta(seconds=30))

    assert services.chunks_sweep() == 1
    assert enqueued == [(dead.pk, ChunkKind.ITEM_METRICS)]
    dead.refresh_from_db()
    assert dead.lease_until is None and dead.state == ChunkState.PENDING
    # A second sweep (or a second sweeper) finds nothing more to do.
    assert services.chunks_sweep() == 0
    assert len(enqueued) == 1
    never_started.refresh_from_db()
    assert never_started.lease_until is None


def test_duplicate_delivery_of_a_leased_chunk_does_nothing() -> None:
    job, chunk = pending_job()
    # Another (live) worker holds the lease.
    ScoringChunk.objects.filter(pk=chunk.pk).update(
        lease_until=timezone.now() + timedelta(seconds=60)
    )
    services.chunk_run(chunk_id=chunk.pk)
    chunk.refresh_from_db()
    assert chunk.state == ChunkState.PENDING and chunk.attempts == 0
    assert not OutputScore.objects.filter(item__study=job.study).exists()


def test_expired_lease_is_taken_over_and_the_chunk_finishes() -> None:
    job, chunk = pending_job()
    ScoringChunk.objects.filter(pk=chunk.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    services.chunk_run(chunk_id=chunk.pk)
    chunk.refresh_from_db()
    assert chunk.state == ChunkState.DONE and chunk.lease_until is None and chunk.attempts == 1
    assert OutputScore.objects.filter(item__study=job.study, metric="rougeL").count() == 3 * 2


def test_transient_error_releases_the_lease_for_the_retry(monkeypatch) -> None:
    _, chunk = pending_job()

    def flaky(_chunk):
        raise TransientScoringError("judge busy")

    monkeypatch.setitem(services.CHUNK_RUNNERS, ChunkKind.ITEM_METRICS, flaky)
    with pytest.raises(TransientScoringError):
        services.chunk_run(chunk_id=chunk.pk, final_attempt=False)
    chunk.refresh_from_db()
    assert chunk.lease_until is None and chunk.state == ChunkState.PENDING
    assert services.chunk_claim(chunk_id=chunk.pk)


def test_heartbeat_renews_the_lease_while_the_chunk_runs(settings) -> None:
    settings.CHUNK_LEASE_SECONDS = 60
    _, chunk = pending_job()
    assert services.chunk_claim(chunk_id=chunk.pk)
    ScoringChunk.objects.filter(pk=chunk.pk).update(
        lease_until=timezone.now() + timedelta(seconds=1)
    )
    assert services.chunk_heartbeat(chunk_id=chunk.pk)
    chunk.refresh_from_db()
    assert chunk.lease_until > timezone.now() + timedelta(seconds=50)
    ScoringChunk.objects.filter(pk=chunk.pk).update(state=ChunkState.DONE)
    assert not services.chunk_heartbeat(chunk_id=chunk.pk)


def test_code_chunks_run_on_the_sandbox_queue(eager_celery) -> None:
    from evalplatform.celery import app

    study = make_study(items=3, overlap=1)
    study = annotation_services.study_update(study=study, settings={"code_execution_enabled": True})
    # annotations.TaskType has no "code" choice yet; the metric registry knows the task type.
    Item.objects.filter(study=study).update(task_type="code")
    with eager_celery(execute=False):
        job = services.scoring_job_start(study=study)
    kinds = set(ScoringChunk.objects.filter(job=job).values_list("kind", flat=True))
    assert ChunkKind.CODE_EXEC in kinds
    assert tasks.task_for_kind(ChunkKind.CODE_EXEC) is tasks.run_sandbox_chunk
    route = app.amqp.router.route({}, tasks.run_sandbox_chunk.name, args=(1,), kwargs={})
    assert route["queue"].name == "sandbox"
    cpu_route = app.amqp.router.route({}, tasks.run_cpu_chunk.name, args=(1,), kwargs={})
    assert cpu_route["queue"].name == "cpu"


def test_no_code_chunk_for_a_study_without_code() -> None:
    study = make_study(items=2, overlap=1)
    job = services.scoring_job_start(study=study)
    assert not ScoringChunk.objects.filter(job=job, kind=ChunkKind.CODE_EXEC).exists()


def test_study_settings_cannot_allow_unsandboxed_code(settings) -> None:
    settings.CODE_EXEC_ALLOW_UNSANDBOXED = False
    study = make_study(items=1, overlap=1)
    study = annotation_services.study_update(
        study=study, settings={ALLOW_UNSANDBOXED_KEY: True, "code_execution_enabled": True}
    )
    assert services.metric_settings_for(study)[ALLOW_UNSANDBOXED_KEY] is False
    settings.CODE_EXEC_ALLOW_UNSANDBOXED = True
    assert services.metric_settings_for(study)[ALLOW_UNSANDBOXED_KEY] is True


def code_study():
    study = make_study(items=2, overlap=1)
    study = annotation_services.study_update(study=study, settings={"code_execution_enabled": True})
    Item.objects.filter(study=study).update(
        task_type="code", metadata={"tests": "assert add(1, 2) == 3"}
    )
    Output.objects.filter(item__study=study).update(text="def add(a, b):\n    return a + b\n")
    return study


def test_code_is_scored_once_by_its_own_chunk(eager_celery) -> None:
    if sandbox_unavailable_reason() is not None:
        pytest.skip(sandbox_unavailable_reason())
    study = code_study()
    with eager_celery(execute=True):
        job = services.scoring_job_start(study=study)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, list(job.chunks.values_list("kind", "error"))
    scores = OutputScore.objects.filter(item__study=study, metric="code_pass")
    assert sorted(scores.values_list("value", flat=True)) == [1.0] * 4


def test_without_a_sandbox_the_code_chunk_fails_with_the_reason(eager_celery, monkeypatch) -> None:
    monkeypatch.setattr(code_exec, "sandbox_unavailable_reason", lambda: "bwrap is missing")
    study = code_study()
    with eager_celery(execute=True):
        job = services.scoring_job_start(study=study)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE_WITH_ERRORS
    failed = ScoringChunk.objects.get(job=job, state=ChunkState.FAILED)
    assert failed.kind == ChunkKind.CODE_EXEC
    assert "code execution refused: bwrap is missing" in failed.error
    assert "CODE_EXEC_ALLOW_UNSANDBOXED" in failed.error
    assert not OutputScore.objects.filter(item__study=study, metric="code_pass").exists()
    # The other metrics are not held back by the sandbox.
    assert ScoringChunk.objects.get(job=job, kind=ChunkKind.ITEM_METRICS).state == ChunkState.DONE
