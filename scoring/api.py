"""Researcher API for pre-scoring: start a job, watch it, read aggregates, export, decide on
identity flags. Raters have no access to anything here (they never see a score)."""

from __future__ import annotations

import dataclasses

from django.http import StreamingHttpResponse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotations import selectors as annotation_selectors
from annotations.api import ResearcherAPIView, csv_stream, jsonl_stream
from annotations.errors import DomainValidationError
from scoring import selectors, services

JobProgressSerializer = inline_serializer(
    "ScoringJobProgress",
    {
        "job_id": serializers.IntegerField(),
        "study": serializers.CharField(),
        "status": serializers.CharField(),
        "done": serializers.IntegerField(),
        "failed": serializers.IntegerField(),
        "total": serializers.IntegerField(),
        "errors": serializers.ListField(),
        "skipped": serializers.ListField(),
        "warnings": serializers.ListField(),
    },
)


class PrescoreStartApi(ResearcherAPIView):
    class PrescoreInputSerializer(serializers.Serializer):
        metrics = serializers.ListField(child=serializers.CharField(), required=False)
        judge = serializers.JSONField(required=False, help_text="judge settings for this job")

    @extend_schema(request=PrescoreInputSerializer, responses={202: JobProgressSerializer})
    def post(self, request: Request, slug: str) -> Response:
        study = annotation_selectors.study_get(slug=slug)
        serializer = self.PrescoreInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.scoring_job_start(
            study=study,
            metrics=serializer.validated_data.get("metrics"),
            judge=serializer.validated_data.get("judge"),
            created_by=request.user,
        )
        job.refresh_from_db()
        body = dataclasses.asdict(selectors.job_progress(job=job))
        return Response(body, status=status.HTTP_202_ACCEPTED)


class ScoringJobApi(ResearcherAPIView):
    @extend_schema(responses=JobProgressSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.job_get(job_id=job_id)
        return Response(dataclasses.asdict(selectors.job_progress(job=job)))


class StudyScoresApi(ResearcherAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("items", bool, description="include per-item scores"),
            OpenApiParameter("offset", int),
            OpenApiParameter("limit", int),
        ],
        responses={200: OpenApiResponse(description="aggregates with bootstrap 95% CIs")},
    )
    def get(self, request: Request, slug: str) -> Response:
        study = annotation_selectors.study_get(slug=slug)
        body = dataclasses.asdict(selectors.study_scores(study=study))
        if request.query_params.get("items") in ("1", "true", "yes"):
            try:
                offset = int(request.query_params.get("offset", 0))
                limit = min(int(request.query_params.get("limit", 500)), 5_000)
            except ValueError as exc:
                raise DomainValidationError("offset and limit must be integers") from exc
            body["items"] = selectors.item_scores(study=study, limit=limit, offset=offset)
        return Response(body)


class StudyScoresExportApi(ResearcherAPIView):
    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["csv", "jsonl"], default="jsonl")],
        responses={200: OpenApiResponse(description="one row per item, system and metric")},
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse:
        study = annotation_selectors.study_get(slug=slug)
        export_format = request.query_params.get("format", "jsonl")
        rows = selectors.score_export_rows(study=study)
        if export_format == "csv":
            response = StreamingHttpResponse(
                csv_stream(rows, selectors.SCORE_EXPORT_FIELDS), content_type="text/csv"
            )
        elif export_format == "jsonl":
            response = StreamingHttpResponse(
                jsonl_stream(rows), content_type="application/x-ndjson"
            )
        else:
            raise DomainValidationError(
                "format must be csv or jsonl", errors={"format": ["invalid"]}
            )
        response["Content-Disposition"] = (
            f'attachment; filename="{study.slug}-scores.{export_format}"'
        )
        return response


class IdentityFlagListApi(ResearcherAPIView):
    @extend_schema(responses={200: OpenApiResponse(description="flagged outputs")})
    def get(self, request: Request, slug: str) -> Response:
        study = annotation_selectors.study_get(slug=slug)
        return Response(
            [
                {
                    "id": f.pk,
                    "item_id": f.item.external_id,
                    "system": f.output.system,
                    "text": f.output.text,
                    "matches": f.matches,
                    "decision": f.decision,
                    "decided_by": f.decided_by.username if f.decided_by else None,
                }
                for f in selectors.identity_flag_list(study=study)
            ]
        )


class IdentityFlagDecideApi(ResearcherAPIView):
    class DecisionInputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=["keep", "exclude", "edited"])
        edited_text = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(
        request=DecisionInputSerializer, responses={200: OpenApiResponse(description="decided")}
    )
    def post(self, request: Request, flag_id: int) -> Response:
        serializer = self.DecisionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        flag = services.identity_flag_decide(
            flag_id=flag_id, user=request.user, **serializer.validated_data
        )
        return Response({"id": flag.pk, "decision": flag.decision})


def report_options_from(request: Request):
    from scoring.reports import ReportOptions

    flag = request.query_params.get("exclude_flagged_raters", "")
    return ReportOptions(exclude_flagged_raters=flag in ("1", "true", "yes"))


class StudyReportApi(ResearcherAPIView):
    @extend_schema(
        parameters=[OpenApiParameter("exclude_flagged_raters", bool)],
        responses={
            200: OpenApiResponse(description="the research report (see docs/architecture.md)")
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        from scoring.reports import build_report, report_sha256

        study = annotation_selectors.study_get(slug=slug)
        report = build_report(study=study, options=report_options_from(request))
        report["sha256"] = report_sha256(report)
        return Response(report)


ExportStatusSerializer = inline_serializer(
    "ExportStatus",
    {
        "id": serializers.IntegerField(),
        "kind": serializers.CharField(),
        "status": serializers.CharField(),
        "rows": serializers.IntegerField(),
        "size_bytes": serializers.IntegerField(),
        "sha256": serializers.CharField(),
        "error": serializers.CharField(),
        "download_url": serializers.CharField(allow_null=True),
    },
)


def export_body(export) -> dict:
    done = export.status == "done"
    return {
        "id": export.pk,
        "study": export.study.slug,
        "kind": export.kind,
        "status": export.status,
        "options": export.options,
        "rows": export.rows,
        "size_bytes": export.size_bytes,
        "sha256": export.sha256,
        "error": export.error,
        "download_url": f"/api/v1/exports/{export.pk}/download/" if done else None,
        "status_url": f"/api/v1/exports/{export.pk}/",
    }


class ExportStartApi(ResearcherAPIView):
    class ExportStartInputSerializer(serializers.Serializer):
        kind = serializers.CharField()
        exclude_flagged_raters = serializers.BooleanField(required=False)
        include_judge = serializers.BooleanField(required=False)

    @extend_schema(request=ExportStartInputSerializer, responses={202: ExportStatusSerializer})
    def post(self, request: Request, slug: str) -> Response:
        from scoring.exports import export_start

        study = annotation_selectors.study_get(slug=slug)
        serializer = self.ExportStartInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        kind = data.pop("kind")
        export = export_start(study=study, kind=kind, options=data, created_by=request.user)
        export.refresh_from_db()
        return Response(export_body(export), status=status.HTTP_202_ACCEPTED)


def export_get(export_id: int):
    from annotations.errors import NotFoundError
    from scoring.models import ReportExport

    export = ReportExport.objects.select_related("study").filter(pk=export_id).first()
    if export is None:
        raise NotFoundError(f"no export {export_id}")
    return export


class ExportStatusApi(ResearcherAPIView):
    @extend_schema(responses=ExportStatusSerializer)
    def get(self, request: Request, export_id: int) -> Response:
        return Response(export_body(export_get(export_id)))


class ExportDownloadApi(ResearcherAPIView):
    @extend_schema(responses={200: OpenApiResponse(description="the file")})
    def get(self, request: Request, export_id: int):
        from pathlib import Path

        from django.http import FileResponse

        from annotations.errors import ConflictError

        export = export_get(export_id)
        if export.status != "done":
            raise ConflictError(f"export {export_id} is {export.status}")
        path = Path(export.file_path)
        return FileResponse(
            path.open("rb"), as_attachment=True, filename=f"{export.study.slug}-{path.name}"
        )
