"""Reads of pre-scoring results: job progress, per-study aggregates with bootstrap CIs,
per-item scores, judge summaries, routing uncertainty and score exports. Researchers only:
nothing here is ever served to a rater."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db.models import Avg, Count, Q

from annotations.errors import NotFoundError
from annotations.models import AuditEvent, Item, Output, Study, System
from scoring.models import (
    ChunkState,
    IdentityDecision,
    IdentityFlag,
    JudgeVerdict,
    OutputScore,
    ScoringChunk,
    ScoringJob,
    StudyScore,
    TrainingRun,
)

REPORT_SEED = 20_261_125  # fixed so the same data always gives the same bootstrap CI


def lower_is_better(metric: str) -> bool:
    return "perplexity" in metric


# --- jobs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobProgress:
    job_id: int
    study: str
    status: str
    done: int
    failed: int
    total: int
    errors: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    warnings: list[str]
    metrics: list[str]
    created_at: str
    finished_at: str | None


def job_get(*, job_id: int) -> ScoringJob:
    job = ScoringJob.objects.select_related("study").filter(pk=job_id).first()
    if job is None:
        raise NotFoundError(f"no scoring job {job_id}")
    return job


def job_progress(*, job: ScoringJob) -> JobProgress:
    counts = ScoringChunk.objects.filter(job=job).aggregate(
        total=Count("pk"),
        done=Count("pk", filter=Q(state=ChunkState.DONE)),
        failed=Count("pk", filter=Q(state=ChunkState.FAILED)),
    )
    errors = [
        {"kind": kind, "chunk": index, "error": error}
        for kind, index, error in ScoringChunk.objects.filter(job=job, state=ChunkState.FAILED)
        .order_by("kind", "index")
        .values_list("kind", "index", "error")[:50]
    ]
    return JobProgress(
        job_id=job.pk,
        study=job.study.slug,
        status=job.status,
        done=counts["done"],
        failed=counts["failed"],
        total=counts["total"],
        errors=errors,
        skipped=list(job.skipped),
        warnings=list(job.warnings),
        metrics=list(job.metrics),
        created_at=job.created_at.isoformat(),
        finished_at=job.finished_at.isoformat() if job.finished_at else None,
    )


def study_jobs(*, study: Study) -> list[ScoringJob]:
    return list(
        ScoringJob.objects.filter(study=study).select_related("study").order_by("-created_at")[:20]
    )


# --- aggregates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSummary:
    metric: str
    version: str
    n: int
    base: float
    tuned: float
    delta: float
    delta_ci95: tuple[float, float] | None
    lower_is_better: bool


@dataclass(frozen=True)
class JudgeSummary:
    judge_id: str
    n: int
    tuned_win_rate: float
    mean_p_tuned: float
    position_bias_rate: float


@dataclass
class StudyScores:
    metrics: list[MetricSummary] = field(default_factory=list)
    corpus: list[dict[str, Any]] = field(default_factory=list)
    judges: list[JudgeSummary] = field(default_factory=list)
    identity_flags: dict[str, int] = field(default_factory=dict)
    queue_order: str = ""
    advice: list[dict[str, str]] = field(default_factory=list)


def paired_values(*, study: Study) -> dict[tuple[str, str], dict[int, dict[str, float]]]:
    """{(metric, version): {item_id: {system: value}}} for the study's item-level scores."""
    table: dict[tuple[str, str], dict[int, dict[str, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    rows = OutputScore.objects.filter(item__study=study, item__excluded=False).values_list(
        "metric", "version", "item_id", "system", "value"
    )
    for metric, version, item_id, system, value in rows.iterator(chunk_size=5_000):
        table[(metric, version)][item_id][system] = value
    return table


@dataclass(frozen=True)
class PairedScores:
    """One metric's item-level values on the study's items (not excluded), sorted by item id:
    the base and the tuned output's value (``nan`` where that output has none)."""

    item_ids: np.ndarray
    base: np.ndarray
    tuned: np.ndarray

    def at(self, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Base and tuned values of `item_ids` (``nan`` for an item without a value)."""
        base = np.full(item_ids.size, np.nan)
        tuned = np.full(item_ids.size, np.nan)
        if self.item_ids.size:
            row = np.minimum(np.searchsorted(self.item_ids, item_ids), self.item_ids.size - 1)
            found = self.item_ids[row] == item_ids
            base[found], tuned[found] = self.base[row[found]], self.tuned[row[found]]
        return base, tuned


def paired_score_columns(*, study: Study) -> dict[tuple[str, str], PairedScores]:
    """{(metric, version): PairedScores}: `paired_values` as arrays, in one statement (a study
    of 100,000 items has 200,000 scores per metric: as ORM rows they cost seconds)."""
    from scoring.columns import CHUNK_ROWS, numeric_columns
    from scoring.stats.arrays import sorted_unique

    score, item = OutputScore._meta.db_table, Item._meta.db_table
    source = (  # table names from model metadata; the study is a parameter
        f"FROM {score} s JOIN {item} i ON i.id = s.item_id WHERE i.study_id = %s AND NOT i.excluded"
    )
    system = f"CASE s.system WHEN '{System.BASE}' THEN 0 WHEN '{System.TUNED}' THEN 1 ELSE -1 END"
    groups = numeric_columns(
        source,
        [study.pk],
        {
            "item_id": ("s.item_id", "int8"),
            "system": (system, "int2"),
            "value": ("s.value", "float8"),
        },
        chunk_by=f"s.id / {CHUNK_ROWS}",
        group_by=("s.metric", "s.version"),
    )
    out = {}
    for (metric, version), table in groups:
        items = sorted_unique(table["item_id"][table["system"] >= 0])
        values = []
        for code in (0, 1):
            mine = table["system"] == code
            column = np.full(items.size, np.nan)
            column[np.searchsorted(items, table["item_id"][mine])] = table["value"][mine]
            values.append(column)
        out[(metric, version)] = PairedScores(items, values[0], values[1])
    return out


def study_scores(
    *,
    study: Study,
    n_resamples: int = 2_000,
    paired: dict[tuple[str, str], PairedScores] | None = None,
    judges: list[JudgeSummary] | None = None,
) -> StudyScores:
    """Per-metric base, tuned and paired delta with a bootstrap 95% CI over items (in item-id
    order, so the same scores always give the same interval); corpus metrics; judge
    summaries; identity flags; metric advice. `paired` and `judges` reuse
    `paired_score_columns` and `judge_summaries` already read."""
    from scoring.metrics.advice import advise
    from scoring.metrics.aggregate import paired_delta_ci

    summary = StudyScores(queue_order=study.queue_order)
    rng = np.random.default_rng(REPORT_SEED)
    paired = paired_score_columns(study=study) if paired is None else paired
    for (metric, version), scores in sorted(paired.items()):
        both = np.isfinite(scores.base) & np.isfinite(scores.tuned)
        if not both.any():
            continue
        base, tuned = scores.base[both], scores.tuned[both]
        ci = None
        if base.size >= 2 and n_resamples > 0:
            result = paired_delta_ci(base, tuned, n_resamples=n_resamples, rng=rng)
            ci = (float(result.ci[0]), float(result.ci[1]))
        summary.metrics.append(
            MetricSummary(
                metric=metric,
                version=version,
                n=int(base.size),
                base=float(np.mean(base)),
                tuned=float(np.mean(tuned)),
                delta=float(np.mean(tuned) - np.mean(base)),
                delta_ci95=ci,
                lower_is_better=lower_is_better(metric),
            )
        )
    by_metric: dict[tuple[str, str], dict[str, Any]] = {}
    for row in StudyScore.objects.filter(study=study).order_by("metric", "system"):
        entry = by_metric.setdefault(
            (row.metric, row.version),
            {"metric": row.metric, "version": row.version, "n_items": row.n_items},
        )
        entry[row.system] = row.values
        entry[f"{row.system}_detail"] = row.detail
    summary.corpus = list(by_metric.values())
    summary.judges = judge_summaries(study=study) if judges is None else judges
    flags = IdentityFlag.objects.filter(item__study=study).aggregate(
        total=Count("pk"),
        pending=Count("pk", filter=Q(decision=IdentityDecision.PENDING)),
        excluded=Count("pk", filter=Q(decision=IdentityDecision.EXCLUDE)),
    )
    summary.identity_flags = flags
    names = {m.metric.split(":")[0] for m in summary.metrics} | {
        c["metric"].split("@")[0] for c in summary.corpus
    }
    if summary.judges:
        names.add("llm_judge")
    summary.advice = [
        {"code": a.code, "severity": a.severity, "message": a.message}
        for a in advise(study.task_type, sorted(names), settings=study.settings or {})
    ]
    summary.advice += classification_advice_rows(study=study, quoted=sorted(names))
    return summary


def classification_advice_rows(*, study: Study, quoted: list[str]) -> list[dict[str, str]]:
    """Imbalance and per-class recall warnings for the study's classification items, per
    system: high accuracy can hide a class the model never gets right."""
    from scoring.metrics.advice import classification_advice
    from scoring.metrics.classification import classification_report

    items = Item.objects.filter(study=study, excluded=False).exclude(label="")
    if study.task_type == "classification":
        items = items.filter(Q(task_type="") | Q(task_type="classification"))
    else:
        items = items.filter(task_type="classification")
    rows = list(items.order_by("id").values_list("id", "label"))
    if len(rows) < 2:
        return []
    texts = {
        (item_id, system): text
        for item_id, system, text in Output.objects.filter(
            item_id__in=[r[0] for r in rows]
        ).values_list("item_id", "system", "text")
    }
    config = study.settings or {}
    advice = []
    for system in (System.BASE, System.TUNED):
        report = classification_report(
            [texts[(item_id, system)] for item_id, _ in rows],
            [label for _, label in rows],
            labels=config.get("labels"),
        )
        for a in classification_advice(
            report,
            quoted_metrics=quoted,
            min_class_recall=float(config.get("min_class_recall", 0.5)),
        ):
            advice.append(
                {"code": a.code, "severity": a.severity, "message": f"{system}: {a.message}"}
            )
    return advice


def judge_overview(*, study: Study) -> tuple[str | None, list[JudgeSummary]]:
    """`primary_judge_id` and `judge_summaries` from one aggregate query (the report needs
    both: three scans of 100,000 verdicts became one)."""
    kept = Q(item__excluded=False)
    rows = list(
        JudgeVerdict.objects.filter(item__study=study)
        .values("judge_id")
        .annotate(
            n_all=Count("pk"),
            n=Count("pk", filter=kept),
            tuned=Count("pk", filter=kept & Q(verdict="tuned")),
            ties=Count("pk", filter=kept & Q(verdict="tie")),
            mean_p=Avg("p_tuned", filter=kept),
            biased=Count("pk", filter=kept & Q(position_bias=True)),
        )
        .order_by("-n_all", "judge_id")  # primary_judge_id's rule: the first row
    )
    summaries = [_judge_summary(row) for row in rows if row["n"]]
    summaries.sort(key=lambda j: j.judge_id)
    return (rows[0]["judge_id"] if rows else None), summaries


def _judge_summary(row: dict[str, Any]) -> JudgeSummary:
    return JudgeSummary(
        judge_id=row["judge_id"],
        n=row["n"],
        tuned_win_rate=(row["tuned"] + 0.5 * row["ties"]) / row["n"],
        mean_p_tuned=float(row["mean_p"]),
        position_bias_rate=row["biased"] / row["n"],
    )


def judge_summaries(*, study: Study) -> list[JudgeSummary]:
    """Per judge: pairs judged, tuned win rate (ties as half), mean P(tuned better) and the
    position-bias rate, in one aggregate query."""
    rows = (
        JudgeVerdict.objects.filter(item__study=study, item__excluded=False)
        .values("judge_id")
        .annotate(
            n=Count("pk"),
            tuned=Count("pk", filter=Q(verdict="tuned")),
            ties=Count("pk", filter=Q(verdict="tie")),
            mean_p=Avg("p_tuned"),
            biased=Count("pk", filter=Q(position_bias=True)),
        )
        .order_by("judge_id")
    )
    return [_judge_summary(row) for row in rows]


def item_scores(*, study: Study, limit: int = 500, offset: int = 0) -> list[dict[str, Any]]:
    """Per-item rows: every metric for base and tuned, and the judge's probability."""
    items = list(Item.objects.filter(study=study).order_by("id")[offset : offset + limit])
    ids = [i.pk for i in items]
    values: dict[int, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for item_id, metric, system, value in OutputScore.objects.filter(item_id__in=ids).values_list(
        "item_id", "metric", "system", "value"
    ):
        values[item_id][metric][system] = value
    judge = dict(JudgeVerdict.objects.filter(item_id__in=ids).values_list("item_id", "p_tuned"))
    return [
        {
            "item_id": item.external_id,
            "excluded": item.excluded,
            "held": item.held,
            "metrics": {m: dict(v) for m, v in values[item.pk].items()},
            "judge_p_tuned": judge.get(item.pk),
        }
        for item in items
    ]


def item_uncertainty(*, study: Study) -> dict[int, float]:
    """Routing priority per item for `uncertain_first` (higher is served first).

    Items whose judge probability lies within 0.1 of 0.5 come first (closest first), then items
    where the judge and the majority of metric deltas point different ways, then the rest by
    closeness to 0.5. Items without a judge verdict keep priority 0."""
    judge = dict(JudgeVerdict.objects.filter(item__study=study).values_list("item_id", "p_tuned"))
    direction: dict[int, int] = defaultdict(int)
    for (metric, _version), per_item in paired_values(study=study).items():
        sign = -1 if lower_is_better(metric) else 1
        for item_id, v in per_item.items():
            if System.BASE in v and System.TUNED in v and v[System.TUNED] != v[System.BASE]:
                direction[item_id] += sign * (1 if v[System.TUNED] > v[System.BASE] else -1)
    priorities = {}
    for item_id, p in judge.items():
        closeness = 1.0 - 2.0 * abs(p - 0.5)
        metric_vote = direction.get(item_id, 0)
        disagree = metric_vote != 0 and (metric_vote > 0) != (p > 0.5)
        if abs(p - 0.5) <= 0.1:
            priorities[item_id] = 2.0 + closeness
        elif disagree:
            priorities[item_id] = 1.0 + closeness
        else:
            priorities[item_id] = closeness
    return priorities


def identity_flag_list(*, study: Study) -> list[IdentityFlag]:
    return list(
        IdentityFlag.objects.filter(item__study=study)
        .select_related("item", "output", "decided_by")
        .order_by("decision", "id")
    )


# --- export ---------------------------------------------------------------------------------

SCORE_EXPORT_FIELDS = ("item_id", "system", "metric", "version", "value")


def score_export_rows(*, study: Study) -> Iterator[dict[str, Any]]:
    """One row per item, system and metric, then the judge's preference probability per item
    (system "pair"), streamed."""
    rows = (
        OutputScore.objects.filter(item__study=study)
        .order_by("item_id", "system", "metric")
        .values_list("item__external_id", "system", "metric", "version", "value")
    )
    for values in rows.iterator(chunk_size=5_000):
        yield dict(zip(SCORE_EXPORT_FIELDS, values, strict=True))
    verdicts = (
        JudgeVerdict.objects.filter(item__study=study)
        .order_by("item_id")
        .values_list("item__external_id", "judge_id", "p_tuned")
    )
    for external_id, judge_id, p_tuned in verdicts.iterator(chunk_size=5_000):
        yield {
            "item_id": external_id,
            "system": "pair",
            "metric": f"judge_p_tuned:{judge_id}",
            "version": "1",
            "value": p_tuned,
        }


def run_for_view(*, run_id: str, user) -> TrainingRun:
    """The run, if `user` may read its study: a run follows its study's access rule
    (`annotations.permissions.can_view_study`). Raises NotFoundError."""
    from annotations.permissions import can_view_study
    from scoring.models import TrainingRun

    run = TrainingRun.objects.select_related("study", "holdout_study").filter(run_id=run_id).first()
    if run is None or not can_view_study(user, run.study):
        raise NotFoundError(f"no run {run_id!r}")
    return run


def primary_judge_id(*, study: Study) -> str | None:
    """The judge the report and the disagreement review reconcile with humans: the one with the
    most verdicts in the study (then by id)."""
    top = (
        JudgeVerdict.objects.filter(item__study=study)
        .values("judge_id")
        .annotate(n=Count("pk"))
        .order_by("-n", "judge_id")
        .first()
    )
    return top["judge_id"] if top else None


def run_waiting_reason(*, run: TrainingRun, slug: str) -> str:
    """Why a run's human study is still a draft: the blinding risk when the audit found one,
    otherwise the reason recorded when opening was deferred (e.g. too few items to audit)."""
    from annotations.services import blinding_risk_message

    audit = run.study.blinding_audit or {}
    if audit.get("at_risk"):
        return blinding_risk_message(slug=slug, audit=audit)
    deferred = (
        AuditEvent.objects.filter(entity="run", entity_id=run.run_id, action="open_deferred")
        .order_by("-id")
        .values_list("details", flat=True)
        .first()
    )
    reason = (deferred or {}).get("reason")
    return reason or f"the human study {slug!r} is a draft: open it from its study page"
