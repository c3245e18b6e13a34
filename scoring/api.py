"""Researcher API for pre-scoring: start a job, watch it, read aggregates, export, decide on
identity flags. Raters have no access to anything here (they never see a score)."""

from __future__ import annotations

import dataclasses

from django.http import HttpResponse, StreamingHttpResponse
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

from annotations.api import ResearcherAPIView, export_response
from annotations.errors import DomainValidationError
from annotations.permissions import (
    IsResearcherOrReleaseOwner,
    IsResearcherOrReleaseOwnerReading,
    can_read_audit_log,
    can_view_study,
    studies_visible_to,
    study_for_change,
    study_for_view,
)
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
        study = study_for_change(user=request.user, slug=slug)
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
        study_for_view(user=request.user, slug=job.study.slug)
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
        study = study_for_view(user=request.user, slug=slug)
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
        study = study_for_view(user=request.user, slug=slug)
        return export_response(
            selectors.score_export_rows(study=study),
            selectors.SCORE_EXPORT_FIELDS,
            request.query_params.get("format", "jsonl"),
            f"{study.slug}-scores",
        )


class IdentityFlagListApi(ResearcherAPIView):
    @extend_schema(responses={200: OpenApiResponse(description="flagged outputs")})
    def get(self, request: Request, slug: str) -> Response:
        study = study_for_view(user=request.user, slug=slug)
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
        from scoring.models import IdentityFlag

        flagged = IdentityFlag.objects.select_related("item__study").filter(pk=flag_id).first()
        if flagged is not None:
            study_for_change(user=request.user, slug=flagged.item.study.slug)
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


class StudyReportApi(APIView):
    permission_classes = [IsAuthenticated, IsResearcherOrReleaseOwnerReading]

    @extend_schema(
        parameters=[
            OpenApiParameter("exclude_flagged_raters", bool),
            OpenApiParameter(
                "fresh", bool, description="build now instead of answering from a stale build"
            ),
        ],
        responses={
            200: OpenApiResponse(description="the research report (see docs/architecture.md)")
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        from scoring.report_builds import report_cached

        study = study_for_view(user=request.user, slug=slug)
        fresh = request.query_params.get("fresh", "") in ("1", "true", "yes")
        cached = report_cached(study=study, options=report_options_from(request), fresh=fresh)
        # The stored JSON text goes out as it is: parsing and re-encoding a big report would
        # cost more than reading it.
        response = HttpResponse(cached.with_status(), content_type="application/json")
        response["X-Report-Current"] = "true" if cached.current else "false"
        response["X-Report-Built-At"] = cached.built_at
        if cached.rebuilding:
            response["X-Report-Rebuilding"] = "true"
        return response


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


class DisagreementListApi(ResearcherAPIView):
    """The disagreement review as JSON: the same items, filters and pages as the page."""

    class DisagreementPageSerializer(serializers.Serializer):
        class DisagreementItemSerializer(serializers.Serializer):
            class VoteSerializer(serializers.Serializer):
                rater = serializers.CharField()
                preferred = serializers.CharField()
                left_system = serializers.CharField(help_text="the system shown as Response 1")
                rationale = serializers.CharField()
                time_ms = serializers.IntegerField(allow_null=True)
                flagged_fast = serializers.BooleanField()
                created_at = serializers.DateTimeField()

            class JudgeSerializer(serializers.Serializer):
                judge_id = serializers.CharField()
                template = serializers.CharField()
                verdict = serializers.CharField()
                p_tuned = serializers.FloatField()
                position_bias = serializers.BooleanField()
                rationale = serializers.CharField()
                evidence = serializers.ListField(child=serializers.CharField())

            class AdjudicationSerializer(serializers.Serializer):
                preference = serializers.CharField()
                rationale = serializers.CharField()
                decided_by = serializers.CharField()
                updated_at = serializers.DateTimeField()

            item_id = serializers.CharField()
            prompt = serializers.CharField()
            reference = serializers.CharField()
            base_text = serializers.CharField()
            tuned_text = serializers.CharField()
            base_model = serializers.CharField()
            tuned_model = serializers.CharField()
            reasons = serializers.ListField(child=serializers.CharField())
            votes = serializers.DictField(child=serializers.IntegerField())
            human_majority = serializers.CharField(allow_null=True)
            judgments = VoteSerializer(many=True)
            judge = JudgeSerializer(allow_null=True)
            adjudication = AdjudicationSerializer(allow_null=True)

        count = serializers.IntegerField(source="total", help_text="items matching the filters")
        page = serializers.IntegerField()
        pages = serializers.IntegerField()
        per_page = serializers.IntegerField()
        total_unfiltered = serializers.IntegerField()
        adjudicated = serializers.IntegerField()
        reason_counts = serializers.DictField(child=serializers.IntegerField())
        raters = serializers.ListField(child=serializers.CharField())
        judge_id = serializers.CharField(allow_null=True)
        results = DisagreementItemSerializer(many=True, source="items")

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "reason", str, enum=["raters_split", "no_majority", "judge_disagrees"]
            ),
            OpenApiParameter("rater", str, description="items this rater judged"),
            OpenApiParameter("adjudicated", str, enum=["yes", "no"]),
            OpenApiParameter("page", int, default=1),
            OpenApiParameter("per_page", int, default=20, description="at most 100"),
        ],
        responses=DisagreementPageSerializer,
    )
    def get(self, request: Request, slug: str) -> Response:
        from scoring.review import (
            MAX_PER_PAGE,
            PER_PAGE,
            disagreement_review,
            review_filters_from,
        )

        study = study_for_view(user=request.user, slug=slug)
        filters = review_filters_from(request.query_params)
        page = positive_int(request.query_params, "page", 1)
        per_page = positive_int(request.query_params, "per_page", PER_PAGE)
        if per_page > MAX_PER_PAGE:
            raise DomainValidationError(
                f"per_page must be at most {MAX_PER_PAGE}", errors={"per_page": ["too large"]}
            )
        review = disagreement_review(study=study, filters=filters, page=page, per_page=per_page)
        return Response(self.DisagreementPageSerializer(review).data)


def positive_int(params, name: str, default: int) -> int:
    """A query parameter that must be a positive integer. Raises DomainValidationError."""
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise DomainValidationError(
            f"{name} must be a positive integer", errors={name: ["invalid"]}
        )
    return value


class ExportStartApi(ResearcherAPIView):
    class ExportStartInputSerializer(serializers.Serializer):
        kind = serializers.CharField()
        exclude_flagged_raters = serializers.BooleanField(required=False)
        include_judge = serializers.BooleanField(required=False)

    @extend_schema(request=ExportStartInputSerializer, responses={202: ExportStatusSerializer})
    def post(self, request: Request, slug: str) -> Response:
        from scoring.exports import export_start

        study = study_for_view(user=request.user, slug=slug)
        serializer = self.ExportStartInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        kind = data.pop("kind")
        export = export_start(study=study, kind=kind, options=data, created_by=request.user)
        export.refresh_from_db()
        return Response(export_body(export), status=status.HTTP_202_ACCEPTED)


def export_get(export_id: int, user):
    from annotations.errors import NotFoundError
    from scoring.models import ReportExport

    export = ReportExport.objects.select_related("study").filter(pk=export_id).first()
    if export is None or not can_view_study(user, export.study):
        raise NotFoundError(f"no export {export_id}")
    return export


class ExportStatusApi(ResearcherAPIView):
    @extend_schema(responses=ExportStatusSerializer)
    def get(self, request: Request, export_id: int) -> Response:
        return Response(export_body(export_get(export_id, request.user)))


class ExportDownloadApi(ResearcherAPIView):
    @extend_schema(responses={200: OpenApiResponse(description="the file")})
    def get(self, request: Request, export_id: int):
        from pathlib import Path

        from django.http import FileResponse

        from annotations.errors import ConflictError

        export = export_get(export_id, request.user)
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
    planning = getattr(run.study, "planning", None)
    if planning is not None:
        body["planning"] = {
            "summary": planning.summary,
            "items_needed": planning.data["needed"]["n_items"],
            "votes_per_item": planning.data["needed"]["votes_per_item"],
            "rated_items": planning.data["rated_items"],
            "can_ever_pass": planning.data["can_ever_pass"],
        }
    if run.study.status == "draft":
        body["human_study_waiting"] = selectors.run_waiting_reason(run=run, slug=slug)
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
        return Response(run_body(selectors.run_for_view(run_id=run_id, user=request.user)))


class RunDecisionApi(ReleaseAPIView):
    @extend_schema(
        responses={200: OpenApiResponse(description="criteria with evidence, verdict, sign-offs")}
    )
    def get(self, request: Request, run_id: str) -> Response:
        from scoring.release import decision_get

        run = selectors.run_for_view(run_id=run_id, user=request.user)
        return Response(decision_get(study=run.study))


class RunSignOffApi(APIView):
    # The service checks the release-owner role and answers 403 itself.
    permission_classes = [IsAuthenticated, IsResearcherOrReleaseOwner]

    class SignOffInputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=["approve", "reject"])
        comment = serializers.CharField(max_length=10_000)

    @extend_schema(
        request=SignOffInputSerializer, responses={201: OpenApiResponse(description="signed")}
    )
    def post(self, request: Request, run_id: str) -> Response:
        from scoring.release import signoff_record

        serializer = self.SignOffInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = selectors.run_for_view(run_id=run_id, user=request.user)
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

        from annotations.errors import NotFoundError
        from scoring.models import SignOff
        from scoring.signoff_record import render_signoff_record

        signoff = SignOff.objects.select_related("study").filter(pk=signoff_id).first()
        if signoff is None or not can_view_study(request.user, signoff.study):
            raise NotFoundError(f"no sign-off {signoff_id}")

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
        forgetting_metric_margins = serializers.DictField(
            child=serializers.FloatField(min_value=0, max_value=1e6), required=False
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

        return Response(
            policy_as_dict(policy_get(study=study_for_view(user=request.user, slug=slug)))
        )

    @extend_schema(
        request=PolicyInputSerializer,
        responses={200: OpenApiResponse(description="updated (admins only)")},
    )
    def patch(self, request: Request, slug: str) -> Response:
        from scoring.release import policy_as_dict, policy_update

        serializer = self.PolicyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        study = study_for_view(user=request.user, slug=slug)
        policy = policy_update(study=study, actor=request.user, **serializer.validated_data)
        return Response(policy_as_dict(policy))


class StudyTransitionApi(ResearcherAPIView):
    class TransitionInputSerializer(serializers.Serializer):
        to = serializers.CharField()
        reason = serializers.CharField(required=False, allow_blank=True, default="")
        acknowledge_blinding_risk = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        request=TransitionInputSerializer, responses={200: OpenApiResponse(description="new state")}
    )
    def post(self, request: Request, slug: str) -> Response:
        from annotations.services import study_transition

        serializer = self.TransitionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        study = study_transition(
            study=study_for_change(user=request.user, slug=slug),
            target=serializer.validated_data["to"],
            actor=request.user,
            reason=serializer.validated_data["reason"],
            acknowledge_blinding_risk=serializer.validated_data["acknowledge_blinding_risk"],
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

        from annotations.models import AuditEvent, Study

        events = AuditEvent.objects.select_related("actor").order_by("id")
        # By the slug the event keeps: the trail of a deleted study is still found.
        if request.query_params.get("study"):
            slug = request.query_params["study"]
            if not can_read_audit_log(request.user):
                study_for_view(user=request.user, slug=slug)
            events = events.filter(study_slug=slug)
        elif not can_read_audit_log(request.user):
            visible = studies_visible_to(request.user, Study.objects.all()).values("slug")
            events = events.filter(study_slug__in=visible)
        rows = (
            {
                "id": e.pk,
                "created_at": e.created_at.isoformat(),
                "entity": e.entity,
                "entity_id": e.entity_id,
                "study": e.study_slug or None,
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
