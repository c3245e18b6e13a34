"""Cached builds of a study's report: `GET .../report/` answers from the last build while the
evidence has not changed, and rebuilds in the background when it has.

A build is current while the study's *evidence key* is the one it was built at: the study's
`evidence_version` (bumped after every change of judgments, adjudications, imports, scores,
identity decisions, policy or recorded looks) and its `updated_at` (settings and state). The
key is read before the evidence, so a build can only be fresher than its key says, never staler.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from annotations.models import Study
from scoring.models import ReportBuild
from scoring.reports import REPORT_SCHEMA_VERSION, ReportOptions, report_sha256

# A background rebuild already queued for the same study and options is not queued again
# within this many seconds.
REBUILD_DEDUPE_SECONDS = 60


@dataclass(frozen=True)
class CachedReport:
    """A report's JSON text, whether it matches the current evidence, and whether a rebuild is
    queued (a stale build is served while it runs)."""

    report_json: str
    current: bool
    built_at: str
    rebuilding: bool

    def with_status(self) -> str:
        """The report's JSON with a `cache` member saying how current it is, spliced into the
        stored text (not part of the report's hash)."""
        status = json.dumps(
            {"current": self.current, "built_at": self.built_at, "rebuilding": self.rebuilding}
        )
        return '{"cache":' + status + "," + self.report_json[1:]


def evidence_key(study: Study) -> str:
    return f"{study.evidence_version}:{study.updated_at.isoformat()}"


def options_key(options: ReportOptions) -> str:
    return json.dumps(
        {
            "exclude_flagged_raters": options.exclude_flagged_raters,
            "n_resamples": options.n_resamples,
            "seed": options.seed,
        },
        sort_keys=True,
    )


def schema_key() -> str:
    import evalplatform

    return f"{REPORT_SCHEMA_VERSION}/{evalplatform.__version__}"


def report_build(*, study_id: int, options: ReportOptions) -> ReportBuild:
    """Builds the study's report (`scoring.release.study_report`) and stores it as the build for
    these options; returns the stored build. Idempotent: a rerun replaces the build."""
    from scoring.release import study_report

    study = Study.objects.get(pk=study_id)
    key = evidence_key(study)  # before reading the evidence: see the module docstring
    started = time.perf_counter()
    report = study_report(study=study, options=options)
    return report_build_store(
        study=study,
        options=options,
        report=report,
        key=key,
        seconds=time.perf_counter() - started,
    )


def report_build_store(
    *, study: Study, options: ReportOptions, report: dict, key: str, seconds: float
) -> ReportBuild:
    """Stores `report`, built at evidence key `key`, as the study's build for `options`."""
    report["sha256"] = report_sha256(report)
    text = json.dumps(report, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    build, _ = ReportBuild.objects.update_or_create(
        study=study,
        options_key=options_key(options),
        defaults={
            "evidence_key": key,
            "schema_version": schema_key(),
            "report_json": text,
            "sha256": report["sha256"],
            "built_at": timezone.now(),
            "build_seconds": seconds,
        },
    )
    return build


def report_rebuild_schedule(*, study_id: int, options: ReportOptions) -> bool:
    """Queues a background rebuild unless one was queued for the same report recently."""
    from scoring.tasks import rebuild_report

    digest = hashlib.sha256(options_key(options).encode()).hexdigest()[:16]
    if not cache.add(f"report-rebuild:{study_id}:{digest}", 1, timeout=REBUILD_DEDUPE_SECONDS):
        return False
    payload = {"exclude_flagged_raters": options.exclude_flagged_raters}
    transaction.on_commit(lambda: rebuild_report.delay(study_id, payload))
    return True


def report_cached(*, study: Study, options: ReportOptions, fresh: bool = False) -> CachedReport:
    """The study's report for `options`: the stored build when it is current; a stale build
    (marked so) while a rebuild runs in the background; built now when there is none, when the
    schema changed, or when `fresh` is asked for."""
    build = (
        ReportBuild.objects.filter(study=study, options_key=options_key(options))
        .only("evidence_key", "schema_version", "report_json", "built_at")
        .first()
    )
    usable = build is not None and build.schema_version == schema_key()
    if usable and build.evidence_key == evidence_key(study):
        return CachedReport(build.report_json, True, build.built_at.isoformat(), False)
    if usable and not fresh:
        report_rebuild_schedule(study_id=study.pk, options=options)
        return CachedReport(build.report_json, False, build.built_at.isoformat(), True)
    build = report_build(study_id=study.pk, options=options)
    return CachedReport(build.report_json, True, build.built_at.isoformat(), False)
