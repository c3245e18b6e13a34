"""Reports and exports written to files by a background task, streamed row by row so a study
with a million judgments is written in constant memory."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotations import selectors as annotation_selectors
from annotations.errors import DomainValidationError, NotFoundError
from annotations.exporting import spreadsheet_safe, write_rows
from annotations.models import Study
from scoring.models import ExportKind, ExportStatus, ReportExport
from scoring.release import study_report
from scoring.reports import (
    ITEM_ROW_FIELDS,
    ReportOptions,
    canonical_json,
    disagreement_texts,
    item_rows,
    preference_pairs,
)

EXTENSIONS = {
    ExportKind.REPORT_JSON: "json",
    ExportKind.REPORT_HTML: "html",
    ExportKind.REPORT_CSV: "csv",
    ExportKind.ITEMS_CSV: "csv",
    ExportKind.ITEMS_JSONL: "jsonl",
    ExportKind.JUDGMENTS_CSV: "csv",
    ExportKind.JUDGMENTS_JSONL: "jsonl",
    ExportKind.DPO_JSONL: "jsonl",
}
OPTION_KEYS = {"exclude_flagged_raters", "include_judge"}


def report_options(options: dict[str, Any]) -> ReportOptions:
    return ReportOptions(exclude_flagged_raters=bool(options.get("exclude_flagged_raters", False)))


def flatten(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key in sorted(value):
            yield from flatten(f"{prefix}.{key}" if prefix else str(key), value[key])
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, entry in enumerate(value):
            yield from flatten(f"{prefix}[{index}]", entry)
    else:
        yield prefix, json.dumps(value) if isinstance(value, list) else value


def write_export(*, study: Study, kind: str, options: dict[str, Any], path: Path) -> int:
    """Writes one export to `path`; returns the number of rows (1 for a whole report)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        if kind in (ExportKind.REPORT_JSON, ExportKind.REPORT_HTML, ExportKind.REPORT_CSV):
            report = study_report(study=study, options=report_options(options))
            if kind == ExportKind.REPORT_JSON:
                report = disagreement_texts(report, study=study)
                handle.write(json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False))
            elif kind == ExportKind.REPORT_HTML:
                from scoring.report_html import MAX_DISAGREEMENTS, render_report_html

                # The HTML lists the first disagreements only: their texts are all it needs.
                report = disagreement_texts(report, study=study, limit=MAX_DISAGREEMENTS)
                handle.write(render_report_html(report))
            else:
                report = disagreement_texts(report, study=study)
                writer = csv.writer(handle)
                writer.writerow(["key", "value"])
                for key, value in flatten("", json.loads(canonical_json(report))):
                    writer.writerow([spreadsheet_safe(key), spreadsheet_safe(value)])
            return 1
        if kind == ExportKind.ITEMS_CSV:
            return write_rows(handle, item_rows(study=study), ITEM_ROW_FIELDS, "csv")
        if kind == ExportKind.ITEMS_JSONL:
            return write_rows(handle, item_rows(study=study), None, "jsonl")
        if kind in (ExportKind.JUDGMENTS_CSV, ExportKind.JUDGMENTS_JSONL):
            rows = annotation_selectors.judgment_export_rows(study=study)
            fmt = "csv" if kind == ExportKind.JUDGMENTS_CSV else "jsonl"
            return write_rows(handle, rows, annotation_selectors.JUDGMENT_EXPORT_FIELDS, fmt)
        if kind == ExportKind.DPO_JSONL:
            pairs = preference_pairs(study=study, include_judge=bool(options.get("include_judge")))
            return write_rows(handle, pairs, None, "jsonl")
    raise DomainValidationError(f"unknown export kind {kind!r}")


@transaction.atomic
def export_start(
    *, study: Study, kind: str, options: dict[str, Any] | None = None, created_by=None
) -> ReportExport:
    """Queues an export; the file is built by `scoring.build_export`. Raises
    DomainValidationError for an unknown kind or option."""
    options = dict(options or {})
    if kind not in ExportKind.values:
        raise DomainValidationError(
            f"kind must be one of {', '.join(ExportKind.values)}", errors={"kind": ["invalid"]}
        )
    unknown = set(options) - OPTION_KEYS
    if unknown:
        raise DomainValidationError(f"unknown option(s): {', '.join(sorted(unknown))}")
    export = ReportExport.objects.create(
        study=study, kind=kind, options=options, created_by=created_by
    )
    export_id = export.pk
    transaction.on_commit(lambda: enqueue_export(export_id))
    return export


def enqueue_export(export_id: int) -> None:
    from scoring.tasks import build_export

    build_export.delay(export_id)


def export_build(*, export_id: int) -> ReportExport:
    """Builds the file of a queued export (idempotent: a finished export is left alone). The
    file is written under a temporary name and renamed, so a crash never leaves half a file
    that looks complete."""
    export = ReportExport.objects.select_related("study").filter(pk=export_id).first()
    if export is None:
        raise NotFoundError(f"no export {export_id}")
    if export.status == ExportStatus.DONE:
        return export
    folder = Path(settings.EXPORT_ROOT) / export.study.slug
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{export.pk}-{export.kind}.{EXTENSIONS[export.kind]}"
    partial = final.with_suffix(final.suffix + ".partial")
    try:
        rows = write_export(
            study=export.study, kind=export.kind, options=export.options, path=partial
        )
    except Exception as exc:
        partial.unlink(missing_ok=True)
        ReportExport.objects.filter(pk=export.pk).update(
            status=ExportStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:5_000],
            finished_at=timezone.now(),
        )
        raise
    os.replace(partial, final)
    digest = hashlib.sha256()
    with final.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    ReportExport.objects.filter(pk=export.pk).update(
        status=ExportStatus.DONE,
        file_path=str(final),
        size_bytes=final.stat().st_size,
        sha256=digest.hexdigest(),
        rows=rows,
        error="",
        finished_at=timezone.now(),
    )
    export.refresh_from_db()
    return export
