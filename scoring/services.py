"""Pre-scoring writes: start a job, run its chunks, finish it, route the human queue, and decide
on identity-leak flags.

A job is split into chunks (a list of item ids and a kind). Each chunk is one Celery task taking
the chunk id; running a chunk again writes nothing twice (unique keys on every score, plus
`ignore_conflicts`) and computes only what is missing, so a redelivered task after a worker
crash is harmless. A running chunk holds a lease (`ScoringChunk.lease_until`) that a heartbeat
thread renews; when its worker dies the lease runs out and the periodic sweep (`chunks_sweep`,
run by Celery beat) enqueues it again, so work recovers within a lease plus a sweep interval
instead of the broker's visibility timeout. Model-based scores that cannot run (no model
configured) are skipped with a reason recorded on the job; they never fail it.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from annotations.errors import ConflictError, DomainValidationError, NotFoundError
from annotations.models import Item, Output, QueueOrder, Study, System
from annotations.services import evidence_changed_notify
from evalplatform.outbound import (
    JUDGE_SECRET_KEYS,
    OutboundRefused,
    judge_connection,
    judge_settings_errors,
)
from scoring.errors import TransientScoringError
from scoring.models import (
    ChunkKind,
    ChunkState,
    IdentityDecision,
    IdentityFlag,
    JobStatus,
    JudgeCacheEntry,
    JudgeVerdict,
    OutputScore,
    ScoringChunk,
    ScoringJob,
    StudyScore,
)

logger = logging.getLogger(__name__)

ITEM_CHUNK_SIZE = 200
JUDGE_CHUNK_SIZE = 32
GPU_KINDS = {ChunkKind.JUDGE, ChunkKind.FLUENCY, ChunkKind.MODEL_PERPLEXITY}
# Metrics that run model-written code: computed only by CODE_EXEC chunks, on the sandbox queue.
SANDBOXED_METRICS = frozenset({"code_pass"})
# Study settings that configure metrics, passed to the pure metric code as they are.
MODEL_SETTING_KEYS = (
    "judge",
    "fluency_model",
    "base_model_path",
    "tuned_model_path",
    "holdout_texts",
)


@dataclass(frozen=True)
class PlannedWork:
    kinds: list[str]
    skipped: list[dict[str, str]]


# --- configuration --------------------------------------------------------------------------


def judge_settings_for(study: Study, override: dict[str, Any] | None = None) -> dict[str, Any]:
    """The judge configuration: the job's override, else the study's, else the defaults from
    the environment (JUDGE_BACKEND, JUDGE_MODEL; an `openai` default uses the endpoint named
    `default`, i.e. JUDGE_BASE_URL with JUDGE_API_KEY). Never contains a key: the worker adds
    the configured endpoint's key (`evalplatform.outbound.judge_connection`)."""
    if override:
        return {k: v for k, v in override.items() if k not in JUDGE_SECRET_KEYS}
    configured = (study.settings or {}).get("judge")
    if configured:
        return {k: v for k, v in configured.items() if k not in JUDGE_SECRET_KEYS}
    if not (settings.JUDGE_BACKEND and settings.JUDGE_MODEL):
        return {}
    defaults: dict[str, Any] = {"backend": settings.JUDGE_BACKEND, "model": settings.JUDGE_MODEL}
    if settings.JUDGE_BACKEND == "openai" and "default" in settings.JUDGE_ENDPOINTS:
        defaults["endpoint"] = "default"
    return defaults


def metric_settings_for(study: Study) -> dict[str, Any]:
    from scoring.metrics.code_exec import ALLOW_UNSANDBOXED_KEY

    values = {k: v for k, v in (study.settings or {}).items() if k not in MODEL_SETTING_KEYS}
    # Only the admin decides whether code may run outside the sandbox, never a study's settings.
    values[ALLOW_UNSANDBOXED_KEY] = settings.CODE_EXEC_ALLOW_UNSANDBOXED
    return values


def plan_model_work(study: Study, judge: dict[str, Any], wanted: set[str] | None) -> PlannedWork:
    """Decides which model-based scorers run, and says why the others are skipped."""
    config = study.settings or {}
    kinds: list[str] = []
    skipped: list[dict[str, str]] = []

    def want(kind: str) -> bool:
        return wanted is None or kind in wanted

    if want("judge"):
        if judge.get("backend") and judge.get("model"):
            kinds.append(ChunkKind.JUDGE)
        else:
            skipped.append(
                {
                    "scorer": "judge",
                    "reason": "no judge configured (study settings "
                    "'judge' or JUDGE_BACKEND / JUDGE_MODEL)",
                }
            )
    if want("fluency"):
        if config.get("fluency_model"):
            kinds.append(ChunkKind.FLUENCY)
        else:
            skipped.append(
                {
                    "scorer": "fluency_perplexity",
                    "reason": "no scorer model configured (study settings 'fluency_model')",
                }
            )
    if want("model_perplexity"):
        if config.get("base_model_path") and config.get("tuned_model_path"):
            kinds.append(ChunkKind.MODEL_PERPLEXITY)
        else:
            skipped.append(
                {
                    "scorer": "model_perplexity",
                    "reason": "base and tuned model paths "
                    "not configured (study settings 'base_model_path', 'tuned_model_path')",
                }
            )
    return PlannedWork(kinds=kinds, skipped=skipped)


# --- jobs -----------------------------------------------------------------------------------


def chunked(ids: Sequence[int], size: int) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


@transaction.atomic
def scoring_job_start(
    *,
    study: Study,
    metrics: Iterable[str] | None = None,
    judge: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
) -> ScoringJob:
    """Creates a scoring job for every item of `study` and enqueues its chunks after commit.

    `metrics` restricts the run to named metrics and scorers ("judge", "fluency",
    "model_perplexity"); by default everything applicable runs. Raises DomainValidationError
    for an unknown metric name or a study without items.
    """
    from scoring.metrics import registry

    wanted = set(metrics) if metrics else None
    known = {m.name for m in registry.all_metrics()} | {"judge", "fluency", "model_perplexity"}
    if wanted and wanted - known:
        raise DomainValidationError(
            f"unknown metric(s): {', '.join(sorted(wanted - known))}; "
            f"known: {', '.join(sorted(known))}",
            errors={"metrics": sorted(wanted - known)},
        )
    judge_problems = judge_settings_errors(judge)
    if judge_problems:
        raise DomainValidationError(
            f"judge settings refused: {'; '.join(judge_problems)}", errors={"judge": judge_problems}
        )
    item_ids = list(Item.objects.filter(study=study).order_by("id").values_list("id", flat=True))
    if not item_ids:
        raise DomainValidationError(f"study {study.slug!r} has no items to score")
    judge_config = judge_settings_for(study, judge)
    plan = plan_model_work(study, judge_config, wanted)
    job = ScoringJob.objects.create(
        study=study,
        metrics=sorted(wanted) if wanted else [],
        judge=judge_config,
        skipped=plan.skipped,
        status=JobStatus.RUNNING,
        created_by=created_by,
    )
    chunks = [
        ScoringChunk(job=job, kind=ChunkKind.ITEM_METRICS, index=i, item_ids=ids)
        for i, ids in enumerate(chunked(item_ids, ITEM_CHUNK_SIZE))
    ]
    chunks.append(ScoringChunk(job=job, kind=ChunkKind.CORPUS_METRICS, index=0, item_ids=[]))
    for kind in plan.kinds:
        if kind == ChunkKind.MODEL_PERPLEXITY:
            chunks.append(ScoringChunk(job=job, kind=kind, index=0, params={"system": System.BASE}))
            chunks.append(
                ScoringChunk(job=job, kind=kind, index=1, params={"system": System.TUNED})
            )
            continue
        size = JUDGE_CHUNK_SIZE if kind == ChunkKind.JUDGE else ITEM_CHUNK_SIZE
        chunks.extend(
            ScoringChunk(job=job, kind=kind, index=i, item_ids=ids)
            for i, ids in enumerate(chunked(item_ids, size))
        )
    if wants_code_execution(study, wanted):
        chunks.extend(
            ScoringChunk(job=job, kind=ChunkKind.CODE_EXEC, index=i, item_ids=ids)
            for i, ids in enumerate(chunked(item_ids, ITEM_CHUNK_SIZE))
        )
    created = ScoringChunk.objects.bulk_create(chunks)
    chunk_refs = [(c.pk, c.kind) for c in created]
    transaction.on_commit(lambda: enqueue_chunks(chunk_refs))
    return job


def wants_code_execution(study: Study, wanted: set[str] | None) -> bool:
    """Whether the job needs a CODE_EXEC chunk: a sandboxed metric is wanted and applies to a
    task type of the study (the metric itself records why it is disabled, if it is)."""
    from scoring.metrics import registry

    if wanted is not None and not (wanted & SANDBOXED_METRICS):
        return False
    task_types = {study.task_type} | set(
        Item.objects.filter(study=study).exclude(task_type="").values_list("task_type", flat=True)
    )
    return any(
        m.name in SANDBOXED_METRICS
        for task_type in task_types
        for m in registry.for_task(task_type)
    )


def enqueue_chunks(chunk_refs: list[tuple[int, str]]) -> None:
    from scoring import tasks

    for chunk_id, kind in chunk_refs:
        tasks.task_for_kind(kind).delay(chunk_id)


def scoring_job_resume(*, job: ScoringJob) -> int:
    """Enqueues every chunk of `job` that is not done (after a crash or a fixed setting)."""
    pending = list(
        ScoringChunk.objects.filter(job=job)
        .exclude(state=ChunkState.DONE)
        .values_list("pk", "kind")
    )
    ScoringChunk.objects.filter(pk__in=[pk for pk, _ in pending]).update(
        state=ChunkState.PENDING, error=""
    )
    ScoringJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, finished_at=None)
    enqueue_chunks(pending)
    return len(pending)


# --- chunk leases ---------------------------------------------------------------------------


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.CHUNK_LEASE_SECONDS)


def chunk_claim(*, chunk_id: int) -> bool:
    """Takes the chunk's lease unless it is done or another worker holds a live lease (a
    duplicate delivery: the broker's redelivery after a sweep already re-enqueued it)."""
    now = timezone.now()
    return bool(
        ScoringChunk.objects.filter(pk=chunk_id, state=ChunkState.PENDING)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + lease_duration(), attempts=F("attempts") + 1)
    )


def chunk_heartbeat(*, chunk_id: int) -> bool:
    """Renews a running chunk's lease; False once the chunk is no longer pending."""
    return bool(
        ScoringChunk.objects.filter(pk=chunk_id, state=ChunkState.PENDING).update(
            lease_until=timezone.now() + lease_duration()
        )
    )


@contextmanager
def chunk_lease_kept(chunk_id: int, *, heartbeat: bool) -> Iterator[None]:
    """Renews the lease from a thread while the chunk runs (a scorer may run for minutes in one
    call, so between-batches renewal is not enough). In-process (eager) runs pass
    `heartbeat=False`: the chunk ends with the request, and a second SQLite writer would only
    contend for the lock."""
    if not heartbeat:
        yield
        return
    stop = threading.Event()
    interval = max(settings.CHUNK_LEASE_SECONDS / 3, 0.2)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    if not chunk_heartbeat(chunk_id=chunk_id):
                        return
                except Exception:  # noqa: BLE001 - a missed beat must not kill the chunk
                    logger.warning("heartbeat of chunk %s failed", chunk_id, exc_info=True)
                    close_old_connections()
        finally:
            # The thread's own connection goes back (to the pool, if one is configured).
            connection.close()

    thread = threading.Thread(target=beat, name=f"chunk-{chunk_id}-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def chunks_sweep() -> int:
    """Enqueues again every pending chunk whose lease ran out (its worker died mid-chunk).

    Idempotent and safe with several sweepers: the lease is cleared with a conditional update,
    so each expired chunk is enqueued by exactly one sweep, and a duplicate delivery finds the
    new lease (or the chunk done) and does nothing. Returns how many chunks were enqueued."""
    now = timezone.now()
    expired = list(
        ScoringChunk.objects.filter(state=ChunkState.PENDING, lease_until__lt=now).values_list(
            "pk", "kind", "lease_until"
        )
    )
    requeued: list[tuple[int, str]] = []
    for pk, kind, lease_until in expired:
        if ScoringChunk.objects.filter(
            pk=pk, state=ChunkState.PENDING, lease_until=lease_until
        ).update(lease_until=None):
            requeued.append((pk, kind))
    if requeued:
        logger.warning("re-enqueued %d scoring chunk(s) whose worker died", len(requeued))
        enqueue_chunks(requeued)
    return len(requeued)


def chunk_run(*, chunk_id: int, final_attempt: bool = True, heartbeat: bool = False) -> None:
    """Runs one chunk (idempotent). Transient errors propagate for the task to retry; on the
    final attempt, and for any other error, the chunk is marked failed with the reason.

    The chunk's lease is taken first; a chunk already done, or leased by a live worker, is left
    alone. `heartbeat` renews the lease while the chunk runs (worker processes)."""
    if not chunk_claim(chunk_id=chunk_id):
        return
    chunk = ScoringChunk.objects.select_related("job__study").get(pk=chunk_id)
    runner = CHUNK_RUNNERS[chunk.kind]
    try:
        with chunk_lease_kept(chunk.pk, heartbeat=heartbeat):
            runner(chunk)
    except TransientScoringError as exc:
        if not final_attempt:
            # Released, so the task's own retry can claim it again.
            ScoringChunk.objects.filter(pk=chunk.pk).update(lease_until=None)
            raise
        chunk_mark(chunk, ChunkState.FAILED, f"gave up after retries: {exc}")
    except Exception as exc:  # noqa: BLE001 - any scorer bug is recorded on the job, not lost
        logger.exception("scoring chunk %s failed", chunk.pk)
        chunk_mark(chunk, ChunkState.FAILED, f"{type(exc).__name__}: {exc}")
    else:
        chunk_mark(chunk, ChunkState.DONE, "")
    job_finish_if_complete(job_id=chunk.job_id)


def chunk_mark(chunk: ScoringChunk, state: str, error: str) -> None:
    ScoringChunk.objects.filter(pk=chunk.pk).update(
        state=state, error=error[:5_000], lease_until=None
    )


@transaction.atomic
def job_finish_if_complete(*, job_id: int) -> bool:
    """Marks the job finished once no chunk is pending (exactly once: the job row is locked)."""
    job = ScoringJob.objects.select_for_update().get(pk=job_id)
    if job.finished_at is not None:
        return True
    if ScoringChunk.objects.filter(job=job, state=ChunkState.PENDING).exists():
        return False
    failed = ScoringChunk.objects.filter(job=job, state=ChunkState.FAILED).exists()
    job.status = JobStatus.DONE_WITH_ERRORS if failed else JobStatus.DONE
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at"])
    routing_priorities_update(study=job.study)
    # New scores are evidence too: cached reports and sign-offs on the old report go stale,
    # pipelines hear of it.
    evidence_changed_notify(job.study_id)
    return True


# --- item and corpus metrics ----------------------------------------------------------------


def effective_task_type(item: Item, study: Study) -> str:
    return item.task_type or study.task_type


def selected_metrics(job: ScoringJob, task_type: str, level: str) -> list[Any]:
    from scoring.metrics import registry

    wanted = set(job.metrics) if job.metrics else None
    return [
        m
        for m in registry.for_task(task_type)
        if m.level == level and (wanted is None or m.name in wanted)
    ]


def run_item_metrics(chunk: ScoringChunk) -> None:
    from scoring.lm.identity import find_identity_leaks

    outputs = score_item_metrics(chunk, sandboxed=False)
    flag_identity_leaks(study=chunk.job.study, outputs=outputs, finder=find_identity_leaks)


def run_code_exec(chunk: ScoringChunk) -> None:
    """The metrics that run model-written code, on the sandbox queue (scoring.sandbox.run_chunk)."""
    score_item_metrics(chunk, sandboxed=True)


def score_item_metrics(chunk: ScoringChunk, *, sandboxed: bool) -> list[Output]:
    """Writes the chunk's missing item-level scores: only the sandboxed metrics, or all others.
    Returns the chunk's outputs."""
    from scoring.metrics import registry

    job = chunk.job
    study = job.study
    metric_settings = metric_settings_for(study)
    items = {i.pk: i for i in Item.objects.filter(pk__in=chunk.item_ids)}
    outputs = list(Output.objects.filter(item_id__in=chunk.item_ids).order_by("item_id", "system"))
    existing = set(
        OutputScore.objects.filter(item_id__in=chunk.item_ids).values_list(
            "output_id", "metric", "version"
        )
    )
    by_task: dict[str, list[Output]] = defaultdict(list)
    for output in outputs:
        by_task[effective_task_type(items[output.item_id], study)].append(output)
    rows: list[OutputScore] = []
    for task_type, task_outputs in by_task.items():
        for metric in selected_metrics(job, task_type, "item"):
            if (metric.name in SANDBOXED_METRICS) != sandboxed:
                continue
            missing = [
                o for o in task_outputs if (o.pk, metric.name, metric.version) not in existing
            ]
            if not missing:
                continue
            report = registry.score_outputs(
                task_type,
                [o.text for o in missing],
                references=[items[o.item_id].reference or None for o in missing],
                labels=[items[o.item_id].label or None for o in missing],
                metadatas=[items[o.item_id].metadata for o in missing],
                settings=metric_settings,
                metric_names=[metric.name],
            )
            for score in report.items:
                output = missing[score.item_index]
                rows.append(
                    OutputScore(
                        output=output,
                        item_id=output.item_id,
                        system=output.system,
                        metric=score.metric,
                        version=score.version,
                        value=score.value,
                        detail=score.detail[:2_000],
                    )
                )
    OutputScore.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1_000)
    return outputs


def flag_identity_leaks(*, study: Study, outputs: list[Output], finder) -> None:
    """Flags outputs that name their own model or maker, and holds their items from raters
    until a researcher decides (keep, edit or exclude)."""
    names = [n for n in (study.base_model, study.tuned_model) if n]
    names += list({o.model_name for o in outputs if o.model_name})
    already = set(
        IdentityFlag.objects.filter(output__in=outputs).values_list("output_id", flat=True)
    )
    flags = []
    held_reasons: dict[int, str] = {}
    for output in outputs:
        if output.pk in already:
            continue
        leaks = finder(output.text, names)
        if not leaks:
            continue
        flags.append(
            IdentityFlag(
                output=output,
                item_id=output.item_id,
                matches=[{"match": leak.match, "reason": leak.reason} for leak in leaks],
            )
        )
        held_reasons[output.item_id] = f"identity leak: {leaks[0].reason} ({leaks[0].match!r})"
    if not flags:
        return
    with transaction.atomic():
        IdentityFlag.objects.bulk_create(flags, ignore_conflicts=True)
        for item_id, reason in held_reasons.items():
            Item.objects.filter(pk=item_id, excluded=False).update(
                held=True, hold_reason=reason[:500]
            )


def run_corpus_metrics(chunk: ScoringChunk) -> None:
    from scoring.metrics import registry

    job = chunk.job
    study = job.study
    metric_settings = metric_settings_for(study)
    items = list(Item.objects.filter(study=study, excluded=False).order_by("id"))
    texts: dict[tuple[int, str], str] = {
        (item_id, system): text
        for item_id, system, text in Output.objects.filter(item__in=items).values_list(
            "item_id", "system", "text"
        )
    }
    by_task: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_task[effective_task_type(item, study)].append(item)
    for task_type, task_items in by_task.items():
        metrics = selected_metrics(job, task_type, "corpus")
        if not metrics:
            continue
        for system in (System.BASE, System.TUNED):
            report = registry.score_outputs(
                task_type,
                [texts[(i.pk, system)] for i in task_items],
                references=[i.reference or None for i in task_items],
                labels=[i.label or None for i in task_items],
                metadatas=[i.metadata for i in task_items],
                settings=metric_settings,
                metric_names=[m.name for m in metrics],
            )
            for score in report.corpus:
                name = score.metric if len(by_task) == 1 else f"{score.metric}@{task_type}"
                StudyScore.objects.update_or_create(
                    study=study,
                    system=system,
                    metric=name,
                    version=score.version,
                    defaults={
                        "values": dict(score.values),
                        "detail": dict(score.detail),
                        "n_items": score.n_items,
                    },
                )
            if report.warnings:
                record_job_warnings(
                    job, [f"{system}: {w.metric}: {w.message}" for w in report.warnings]
                )


def record_job_warnings(job: ScoringJob, messages: list[str]) -> None:
    with transaction.atomic():
        locked = ScoringJob.objects.select_for_update().get(pk=job.pk)
        merged = list(dict.fromkeys([*locked.warnings, *messages]))
        locked.warnings = merged[:200]
        locked.save(update_fields=["warnings"])


# --- model-based scorers --------------------------------------------------------------------


class DatabaseJudgeCache:
    """The judge answer cache in the database, shared by every worker.

    The HTTP judge calls `get`/`set` from its own threads, which must not each open database
    connections inside a task's transaction; so the entries of one judge are loaded once in
    the task's thread, lookups are served from memory, and new answers are written by `flush`.
    """

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, dict[str, Any]] = {}
        self.namespace = ""
        self.lock = threading.Lock()

    def load(self, namespace: str) -> None:
        self.namespace = namespace[:300]
        rows = JudgeCacheEntry.objects.filter(namespace=self.namespace).values_list("key", "value")
        with self.lock:
            self.entries.update(rows.iterator(chunk_size=5_000))

    def get(self, key: str) -> dict[str, Any] | None:
        with self.lock:
            return self.entries.get(key)

    def set(self, key: str, value: dict[str, Any]) -> None:
        with self.lock:
            self.entries[key] = value
            self.pending[key] = value

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, {}
        JudgeCacheEntry.objects.bulk_create(
            [JudgeCacheEntry(key=k, namespace=self.namespace, value=v) for k, v in pending.items()],
            ignore_conflicts=True,
        )


def run_judge(chunk: ScoringChunk) -> None:
    from scoring.lm.errors import ModelUnavailableError, TransientJudgeError
    from scoring.lm.judge import JudgePair, build_judge, judge_pairs

    job = chunk.job
    try:
        # Checked again here, just before sending: the stored settings may predate a change of
        # the allow-list, and only a configured endpoint ever receives the server's key.
        config = judge_connection(job.judge)
    except OutboundRefused as exc:
        record_skip(job, "judge", f"judge address refused: {exc}")
        return
    cache = DatabaseJudgeCache()
    try:
        judge = build_judge(config, cache=cache)
    except ModelUnavailableError as exc:
        record_skip(job, "judge", str(exc))
        return
    cache.load(judge.judge_id)
    done = set(
        JudgeVerdict.objects.filter(
            item_id__in=chunk.item_ids, judge_id=judge.judge_id
        ).values_list("item_id", flat=True)
    )
    items = [
        i for i in Item.objects.filter(pk__in=chunk.item_ids).order_by("id") if i.pk not in done
    ]
    if not items:
        return
    texts = {(o.item_id, o.system): o.text for o in Output.objects.filter(item__in=items)}
    pairs = [
        JudgePair(
            question=i.prompt,
            base=texts[(i.pk, System.BASE)],
            tuned=texts[(i.pk, System.TUNED)],
            reference=i.reference or None,
        )
        for i in items
    ]
    try:
        results = judge_pairs(pairs, judge, on_error="record")
    except TransientJudgeError as exc:
        raise TransientScoringError(str(exc)) from exc
    except ModelUnavailableError as exc:
        record_skip(job, "judge", str(exc))
        return
    finally:
        # Answers already paid for are kept even when a later one failed.
        cache.flush()
    rows = []
    for item, result in zip(items, results, strict=True):
        if result.p_tuned is None:
            record_job_warnings(
                job, [f"judge could not read a verdict for item {item.external_id}: {result.error}"]
            )
            continue
        rows.append(
            JudgeVerdict(
                item=item,
                judge_id=result.judge_id,
                template=result.template,
                p_tuned=result.p_tuned,
                verdict=result.verdict or "tie",
                position_bias=result.position_bias,
                raw={
                    "order_probabilities": result.order_probabilities,
                    "p_first": result.p_first,
                    "expected_scores": result.expected_scores,
                },
            )
        )
    JudgeVerdict.objects.bulk_create(rows, ignore_conflicts=True)


def record_skip(job: ScoringJob, scorer: str, reason: str) -> None:
    with transaction.atomic():
        locked = ScoringJob.objects.select_for_update().get(pk=job.pk)
        entry = {"scorer": scorer, "reason": reason}
        if entry not in locked.skipped:
            locked.skipped = [*locked.skipped, entry]
            locked.save(update_fields=["skipped"])


FLUENCY_METRIC = "fluency_perplexity"
FLUENCY_VERSION = "1"


def run_fluency(chunk: ScoringChunk) -> None:
    from scoring.lm.errors import ModelUnavailableError
    from scoring.lm.perplexity import perplexity

    job = chunk.job
    model = (job.study.settings or {}).get("fluency_model", "")
    metric = f"{FLUENCY_METRIC}:{model}"[:80]
    existing = set(
        OutputScore.objects.filter(
            item_id__in=chunk.item_ids, metric=metric, version=FLUENCY_VERSION
        ).values_list("output_id", flat=True)
    )
    outputs = [
        o
        for o in Output.objects.filter(item_id__in=chunk.item_ids).order_by("item_id", "system")
        if o.pk not in existing
    ]
    if not outputs:
        return
    try:
        report = perplexity([o.text for o in outputs], model)
    except ModelUnavailableError as exc:
        record_skip(job, "fluency_perplexity", str(exc))
        return
    rows = [
        OutputScore(
            output=o,
            item_id=o.item_id,
            system=o.system,
            metric=metric,
            version=FLUENCY_VERSION,
            value=r.perplexity,
            detail=f"tokens={r.n_tokens}",
        )
        for o, r in zip(outputs, report.results, strict=True)
        if r.excluded is None
    ]
    OutputScore.objects.bulk_create(rows, ignore_conflicts=True)


MODEL_PERPLEXITY_VERSION = "1"


def run_model_perplexity(chunk: ScoringChunk) -> None:
    """Each evaluated model's own perplexity on held-out text: the study's references (task
    fit) and the general hold-out set (catastrophic forgetting). Only base vs tuned on the same
    texts is meaningful, so both systems measure exactly the same texts."""
    from scoring.lm.errors import ModelUnavailableError
    from scoring.lm.perplexity import perplexity

    job = chunk.job
    study = job.study
    system = chunk.params["system"]
    config = study.settings or {}
    model = config.get(f"{system}_model_path", "")
    text_sets = {
        "references": list(
            Item.objects.filter(study=study)
            .exclude(reference="")
            .order_by("id")
            .values_list("reference", flat=True)
        ),
        "holdout": [t for t in config.get("holdout_texts", []) if isinstance(t, str) and t.strip()],
    }
    for text_set, texts in text_sets.items():
        if not texts:
            continue
        metric = f"model_perplexity_{text_set}"
        if StudyScore.objects.filter(
            study=study, system=system, metric=metric, version=MODEL_PERPLEXITY_VERSION
        ).exists():
            continue
        try:
            report = perplexity(texts, model)
        except ModelUnavailableError as exc:
            record_skip(job, f"model_perplexity ({system})", str(exc))
            return
        StudyScore.objects.update_or_create(
            study=study,
            system=system,
            metric=metric,
            version=MODEL_PERPLEXITY_VERSION,
            defaults={
                "values": {
                    "corpus_perplexity_token_weighted": report.corpus_perplexity_token_weighted,
                    "mean_per_text_perplexity": report.mean_per_text_perplexity,
                    "total_tokens": float(report.total_tokens),
                },
                "detail": {
                    "model": model,
                    "per_text": [r.perplexity for r in report.results],
                    "excluded": report.n_excluded,
                    "window": report.window,
                    "stride": report.stride,
                },
                "n_items": len(texts),
            },
        )


CHUNK_RUNNERS = {
    ChunkKind.ITEM_METRICS: run_item_metrics,
    ChunkKind.CORPUS_METRICS: run_corpus_metrics,
    ChunkKind.JUDGE: run_judge,
    ChunkKind.FLUENCY: run_fluency,
    ChunkKind.MODEL_PERPLEXITY: run_model_perplexity,
    ChunkKind.CODE_EXEC: run_code_exec,
}


# --- routing humans where automation is unsure ----------------------------------------------


def routing_priorities_update(*, study: Study) -> int:
    """With `uncertain_first`, items whose judge probability is nearest 0.5 come first, then
    items where judge and metric deltas disagree; with `random`, priorities are reset to 0 so
    a partly finished study stays an unbiased sample."""
    from scoring.selectors import item_uncertainty

    items = list(Item.objects.filter(study=study).only("id", "priority"))
    if study.queue_order != QueueOrder.UNCERTAIN_FIRST:
        changed = [i for i in items if i.priority != 0.0]
        for item in changed:
            item.priority = 0.0
    else:
        uncertainty = item_uncertainty(study=study)
        changed = []
        for item in items:
            value = uncertainty.get(item.pk, 0.0)
            if item.priority != value:
                item.priority = value
                changed.append(item)
    Item.objects.bulk_update(changed, ["priority"], batch_size=1_000)
    return len(changed)


# --- identity-leak decisions ----------------------------------------------------------------


@transaction.atomic
def identity_flag_decide(
    *, flag_id: int, decision: str, user: AbstractBaseUser, edited_text: str = ""
) -> IdentityFlag:
    """A researcher keeps, edits or excludes a flagged output; the item is released to raters
    (keep, edit) or excluded for good. Raises NotFoundError, DomainValidationError."""
    flag = (
        IdentityFlag.objects.select_for_update()
        .select_related("output", "item")
        .filter(pk=flag_id)
        .first()
    )
    if flag is None:
        raise NotFoundError("no such identity flag")
    if decision not in (IdentityDecision.KEEP, IdentityDecision.EXCLUDE, IdentityDecision.EDITED):
        raise DomainValidationError("decision must be keep, exclude or edited")
    if decision == IdentityDecision.EDITED:
        if not edited_text.strip():
            raise DomainValidationError(
                "an edit needs the new text", errors={"edited_text": ["required"]}
            )
        if flag.item.judgments.exists():
            raise ConflictError(
                "the item already has judgments; editing it now would change evidence"
            )
        Output.objects.filter(pk=flag.output_id).update(text=edited_text)
        # The edited text needs fresh scores.
        OutputScore.objects.filter(output_id=flag.output_id).delete()
    flag.decision = decision
    flag.decided_by = user
    flag.decided_at = timezone.now()
    flag.save(update_fields=["decision", "decided_by", "decided_at"])
    pending = IdentityFlag.objects.filter(
        item=flag.item, decision=IdentityDecision.PENDING
    ).exists()
    if decision == IdentityDecision.EXCLUDE:
        Item.objects.filter(pk=flag.item_id).update(excluded=True, held=False)
    elif not pending:
        Item.objects.filter(pk=flag.item_id).update(held=False, hold_reason="")
    evidence_changed_notify(flag.item.study_id)
    return flag
