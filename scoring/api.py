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
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import selectors as annotation_selectors
from annotations.api import ResearcherAPIView, export_response
from annotations.permissions import IsResearcherOrReleaseOwner
from evalplatform.parsers import SafeJSONParser
from evalplatform.serializers import StrictSerializer
from scoring import selectors, services
from scoring.release.submission import RunSubmissionSerializer

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
    class StudyScoresQuerySerializer(serializers.Serializer):
        items = serializers.BooleanField(required=False, default=False)
        offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=10**9)
        limit = serializers.IntegerField(required=False, default=500, min_value=1, max_value=5_000)

    @extend_schema(
        parameters=[StudyScoresQuerySerializer],
        responses={200: OpenApiResponse(description="aggregates with bootstrap 95% CIs")},
    )
    def get(self, request: Request, slug: str) -> Response:
        query = self.StudyScoresQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        study = annotation_selectors.study_get(slug=slug)
        body = dataclasses.asdict(selectors.study_scores(study=study))
        if query.validated_data["items"]:
            body["items"] = selectors.item_scores(
                study=study,
                limit=query.validated_data["limit"],
                offset=query.validated_data["offset"],
            )
        return Response(body)


class StudyScoresExportApi(ResearcherAPIView):
    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["csv", "jsonl"], default="jsonl")],
        responses={200: OpenApiResponse(description="one row per item, system and metric")},
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse:
        study = annotation_selectors.study_get(slug=slug)
        return export_response(
            selectors.score_export_rows(study=study),
            selectors.SCORE_EXPORT_FIELDS,
            request.query_params.get("format", "jsonl"),
            f"{study.slug}-scores",
        )


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
        from scoring.release import study_report
        from scoring.reports import report_sha256

        study = annotation_selectors.study_get(slug=slug)
        report = study_report(study=study, options=report_options_from(request))
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


# --- runs, decision, sign-off, policy, audit ------------------------------------------------------


class ReleaseAPIView(APIView):
    permission_classes = [IsAuthenticated, IsResearcherOrReleaseOwner]


def run_body(run, *, created: bool | None = None) -> dict:
    slug = run.study.slug
    body = {
        "run_id": run.run_id,
        "study": slug,
        "holdout_study": run.holdout_study.slug if run.holdout_study else None,
        "state": run.study.status,
        "urls": {
            "study": f"/studies/{slug}/",
            "rate": f"/rate/{slug}/",
            "scores": f"/studies/{slug}/scores/",
            "report": f"/studies/{slug}/report/",
            "signoff": f"/runs/{run.run_id}/signoff/",
            "decision": f"/api/v1/runs/{run.run_id}/decision/",
            "report_api": f"/api/v1/studies/{slug}/report/",
        },
        "webhook_deliveries": [
            {
                "id": d.pk,
                "status": d.status,
                "attempts": d.attempts,
                "last_status_code": d.last_status_code,
                "last_error": d.last_error,
                "event": d.payload.get("event"),
                "state": d.payload.get("state"),
                "verdict": d.payload.get("verdict"),
                "created_at": d.created_at.isoformat(),
            }
            for d in run.webhook_deliveries.all()[:20]
        ],
    }
    if created is not None:
        body["created"] = created
    return body


class LenientJSONParser(SafeJSONParser):
    """Accepts NaN and Infinity, which training loggers do write, so the submission gets a
    field-level error ("training_log[3].eval_loss: loss is NaN") instead of a parse error."""

    strict = False


class RunSubmitApi(ResearcherAPIView):
    parser_classes = [LenientJSONParser]

    @extend_schema(
        request=RunSubmissionSerializer,
        responses={
            201: OpenApiResponse(description="created"),
            200: OpenApiResponse(description="already submitted"),
            400: OpenApiResponse(description="field-level errors; nothing created"),
        },
    )
    def post(self, request: Request) -> Response:
        from scoring.release import run_submit

        run, created = run_submit(payload=request.data, actor=request.user)
        return Response(
            run_body(run, created=created),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class RunDetailApi(ReleaseAPIView):
    @extend_schema(
        responses={
            200: OpenApiResponse(description="the run, its study URLs and webhook deliveries")
        }
    )
    def get(self, request: Request, run_id: str) -> Response:
        from scoring.release import run_get

        return Response(run_body(run_get(run_id=run_id)))


class RunDecisionApi(ReleaseAPIView):
    @extend_schema(
        responses={200: OpenApiResponse(description="criteria with evidence, verdict, sign-offs")}
    )
    def get(self, request: Request, run_id: str) -> Response:
        from scoring.release import decision_get, run_get

        run = run_get(run_id=run_id)
        return Response(decision_get(study=run.study))


class RunSignOffApi(APIView):
    # The service checks the release-owner role and answers 403 itself.
    permission_classes = [IsAuthenticated]

    class SignOffInputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=["approve", "reject"])
        comment = serializers.CharField(max_length=10_000)

    @extend_schema(
        request=SignOffInputSerializer, responses={201: OpenApiResponse(description="signed")}
    )
    def post(self, request: Request, run_id: str) -> Response:
        from scoring.release import run_get, signoff_record

        serializer = self.SignOffInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = run_get(run_id=run_id)
        signoff = signoff_record(study=run.study, actor=request.user, **serializer.validated_data)
        run.study.refresh_from_db()
        return Response(
            {
                "id": signoff.pk,
                "decision": signoff.decision,
                "report_sha256": signoff.report_sha256,
                "state": run.study.status,
                "record_url": f"/api/v1/signoffs/{signoff.pk}/record/",
            },
            status=status.HTTP_201_CREATED,
        )


class SignOffRecordApi(ReleaseAPIView):
    @extend_schema(
        responses={200: OpenApiResponse(description="self-contained HTML sign-off record")}
    )
    def get(self, request: Request, signoff_id: int):
        from django.http import HttpResponse

        from scoring.signoff_record import render_signoff_record

        return HttpResponse(
            render_signoff_record(signoff_id=signoff_id), content_type="text/html; charset=utf-8"
        )


class StudyPolicyApi(ReleaseAPIView):
    class PolicyInputSerializer(StrictSerializer):
        min_human_votes = serializers.IntegerField(
            min_value=0, max_value=10_000_000, required=False
        )
        min_krippendorff_alpha = serializers.FloatField(min_value=-1, max_value=1, required=False)
        require_win_ci_above_half = serializers.BooleanField(required=False)
        max_forgetting_perplexity_increase = serializers.FloatField(
            min_value=0, max_value=1e6, required=False
        )
        max_forgetting_metric_drop = serializers.FloatField(
            min_value=0, max_value=1e6, required=False
        )
        forbid_overfitting = serializers.BooleanField(required=False)
        min_judge_human_agreement = serializers.FloatField(
            min_value=0, max_value=1, required=False, allow_null=True
        )
        require_three_metric_kinds = serializers.BooleanField(required=False)
        required_approvals = serializers.IntegerField(min_value=1, max_value=3, required=False)

    @extend_schema(responses={200: OpenApiResponse(description="the study's release policy")})
    def get(self, request: Request, slug: str) -> Response:
        from scoring.release import policy_as_dict, policy_get

        return Response(policy_as_dict(policy_get(study=annotation_selectors.study_get(slug=slug))))

    @extend_schema(
        request=PolicyInputSerializer,
        responses={200: OpenApiResponse(description="updated (admins only)")},
    )
    def patch(self, request: Request, slug: str) -> Response:
        from scoring.release import policy_as_dict, policy_update

        serializer = self.PolicyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        study = annotation_selectors.study_get(slug=slug)
        policy = policy_update(study=study, actor=request.user, **serializer.validated_data)
        return Response(policy_as_dict(policy))


class StudyTransitionApi(ResearcherAPIView):
    class TransitionInputSerializer(serializers.Serializer):
        to = serializers.CharField()
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(
        request=TransitionInputSerializer, responses={200: OpenApiResponse(description="new state")}
    )
    def post(self, request: Request, slug: str) -> Response:
        from annotations.services import study_transition

        serializer = self.TransitionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        study = study_transition(
            study=annotation_selectors.study_get(slug=slug),
            target=serializer.validated_data["to"],
            actor=request.user,
            reason=serializer.validated_data["reason"],
        )
        return Response({"study": study.slug, "state": study.status})


AUDIT_FIELDS = (
    "id",
    "created_at",
    "entity",
    "entity_id",
    "study",
    "action",
    "before",
    "after",
    "actor",
    "details",
)


class AuditLogApi(ReleaseAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("study", str),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={200: OpenApiResponse(description="audit events, oldest first")},
    )
    def get(self, request: Request):
        import json as json_module

        from annotations.models import AuditEvent

        events = AuditEvent.objects.select_related("study", "actor").order_by("id")
        if request.query_params.get("study"):
            events = events.filter(study__slug=request.query_params["study"])
        rows = (
            {
                "id": e.pk,
                "created_at": e.created_at.isoformat(),
                "entity": e.entity,
                "entity_id": e.entity_id,
                "study": e.study.slug if e.study else None,
                "action": e.action,
                "before": e.before,
                "after": e.after,
                "actor": e.actor.username if e.actor else None,
                "details": e.details,
            }
            for e in events.iterator(chunk_size=2_000)
        )
        if request.query_params.get("format") == "csv":
            flat = ({**r, "details": json_module.dumps(r["details"], sort_keys=True)} for r in rows)
            return export_response(flat, AUDIT_FIELDS, "csv", "audit")
        return Response(list(rows))
