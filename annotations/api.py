"""REST API, /api/v1/: one view per use case; views validate, call a service or selector,
serialize. Rater-facing output serializers list their fields explicitly: they are how blinding
would leak, so they carry no system, model name or output id."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import permissions, roles, selectors, services
from annotations.errors import DomainValidationError
from annotations.exporting import FORMATS, stream_rows
from annotations.importers import parse_alpaca_pair, parse_jsonl
from annotations.models import QueueOrder, StudyStatus, TaskType
from annotations.permissions import (
    IsRater,
    IsResearcher,
    IsResearcherOrReleaseOwnerReading,
    study_for_change,
    study_for_delete,
    study_for_view,
)


class ResearcherAPIView(APIView):
    permission_classes = [IsAuthenticated, IsResearcher]


class RaterAPIView(APIView):
    permission_classes = [IsAuthenticated, IsRater]


# --- studies --------------------------------------------------------------------------------


class StudyOutputSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    task_type = serializers.CharField()
    overlap = serializers.IntegerField()
    max_overlap = serializers.IntegerField()
    instructions = serializers.CharField()
    status = serializers.CharField()
    base_model = serializers.CharField()
    tuned_model = serializers.CharField()
    gold_rate = serializers.FloatField()
    min_time_ms = serializers.IntegerField()
    lease_minutes = serializers.IntegerField()
    queue_order = serializers.CharField()
    settings = serializers.JSONField()
    created_at = serializers.DateTimeField()


class StudyFieldsSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    task_type = serializers.ChoiceField(choices=TaskType.choices)
    overlap = serializers.IntegerField(min_value=1, max_value=50, default=3)
    max_overlap = serializers.IntegerField(min_value=1, max_value=100, required=False)
    instructions = serializers.CharField(allow_blank=True, required=False)
    status = serializers.ChoiceField(choices=StudyStatus.choices, required=False)
    base_model = serializers.CharField(allow_blank=True, max_length=200, required=False)
    tuned_model = serializers.CharField(allow_blank=True, max_length=200, required=False)
    gold_rate = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    min_time_ms = serializers.IntegerField(min_value=0, required=False)
    lease_minutes = serializers.IntegerField(min_value=1, max_value=240, required=False)
    queue_order = serializers.ChoiceField(choices=QueueOrder.choices, required=False)
    settings = serializers.JSONField(required=False)


class StudyListCreateApi(ResearcherAPIView):
    class StudyListCreateInputSerializer(StudyFieldsSerializer):
        slug = serializers.SlugField(max_length=80)

    @extend_schema(responses=StudyOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        studies = permissions.studies_visible_to(request.user, selectors.study_list())
        studies = studies.filter(archived_at__isnull=True)
        return Response(StudyOutputSerializer(studies, many=True).data)

    @extend_schema(request=StudyListCreateInputSerializer, responses={201: StudyOutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.StudyListCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        study = services.study_create(created_by=request.user, **serializer.validated_data)
        return Response(StudyOutputSerializer(study).data, status=status.HTTP_201_CREATED)


class StudyDetailApi(APIView):
    permission_classes = [IsAuthenticated, IsResearcherOrReleaseOwnerReading]

    class StudyDetailUpdateSerializer(StudyFieldsSerializer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            for field in self.fields.values():
                field.required = False

    @extend_schema(responses=StudyOutputSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(StudyOutputSerializer(study_for_view(user=request.user, slug=slug)).data)

    @extend_schema(request=StudyDetailUpdateSerializer, responses=StudyOutputSerializer)
    def patch(self, request: Request, slug: str) -> Response:
        study = study_for_change(user=request.user, slug=slug)
        serializer = self.StudyDetailUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        study = services.study_update(study=study, actor=request.user, **serializer.validated_data)
        return Response(StudyOutputSerializer(study).data)

    @extend_schema(
        responses={
            204: None,
            409: OpenApiResponse(description="holds evidence (judgments, a run, sign-offs)"),
        }
    )
    def delete(self, request: Request, slug: str) -> Response:
        study = study_for_delete(user=request.user, slug=slug)
        services.study_delete(study=study, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class StudyImportApi(ResearcherAPIView):
    parser_classes = [MultiPartParser, FormParser]

    class StudyImportInputSerializer(serializers.Serializer):
        file = serializers.FileField(help_text="JSONL pairs, or the base file of an alpaca pair")
        format = serializers.ChoiceField(choices=["jsonl", "alpaca"], default="jsonl")
        tuned_file = serializers.FileField(required=False, help_text="alpaca: the tuned file")

    @extend_schema(
        request=StudyImportInputSerializer,
        responses={
            201: inline_serializer("ImportResult", {"items": serializers.IntegerField()}),
            400: OpenApiResponse(
                description="file:line: reason for every bad line; nothing written"
            ),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_change(user=request.user, slug=slug)
        serializer = self.StudyImportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        if serializer.validated_data["format"] == "alpaca":
            tuned = serializer.validated_data.get("tuned_file")
            if tuned is None:
                raise DomainValidationError(
                    "alpaca format needs tuned_file", errors={"tuned_file": ["required"]}
                )
            parsed = parse_alpaca_pair(
                upload.read(),
                tuned.read(),
                base_file=upload.name,
                tuned_file=tuned.name,
                max_issues=settings.IMPORT_MAX_ERRORS,
            )
        else:
            parsed = parse_jsonl(
                upload.read(),
                file=upload.name,
                max_line_bytes=settings.IMPORT_MAX_LINE_BYTES,
                max_issues=settings.IMPORT_MAX_ERRORS,
            )
        summary = services.items_import(study=study, parsed=parsed, source=upload.name)
        return Response({"items": summary.items}, status=status.HTTP_201_CREATED)


class StudyRatersApi(ResearcherAPIView):
    class StudyRatersInputSerializer(serializers.Serializer):
        usernames = serializers.ListField(child=serializers.CharField(), min_length=1)

    @extend_schema(responses=inline_serializer("RaterList", {"raters": serializers.ListField()}))
    def get(self, request: Request, slug: str) -> Response:
        progress = selectors.study_progress(study=study_for_view(user=request.user, slug=slug))
        return Response({"raters": [r.rater for r in progress.raters]})

    @extend_schema(
        request=StudyRatersInputSerializer,
        responses=inline_serializer("RaterList2", {"raters": serializers.ListField()}),
    )
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_change(user=request.user, slug=slug)
        serializer = self.StudyRatersInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        memberships = services.raters_assign(
            study=study, usernames=serializer.validated_data["usernames"]
        )
        return Response({"raters": [m.rater.username for m in memberships]})


class StudyProgressApi(ResearcherAPIView):
    class StudyProgressOutputSerializer(serializers.Serializer):
        class StudyProgressRaterSerializer(serializers.Serializer):
            rater = serializers.CharField()
            judged = serializers.IntegerField()
            skipped = serializers.IntegerField()
            leased = serializers.IntegerField()
            flagged_fast = serializers.IntegerField()

        items = serializers.IntegerField()
        gold_items = serializers.IntegerField()
        items_complete = serializers.IntegerField()
        judgments = serializers.IntegerField()
        votes_wanted = serializers.IntegerField()
        live_leases = serializers.IntegerField()
        percent = serializers.FloatField()
        raters = StudyProgressRaterSerializer(many=True)

    @extend_schema(responses=StudyProgressOutputSerializer)
    def get(self, request: Request, slug: str) -> Response:
        progress = selectors.study_progress(study=study_for_view(user=request.user, slug=slug))
        return Response(self.StudyProgressOutputSerializer(progress).data)


def export_response(
    rows: Iterator[dict], fields: tuple[str, ...], export_format: str, filename: str
) -> StreamingHttpResponse:
    """A streamed CSV or JSONL download (constant memory). Raises DomainValidationError for
    another format."""
    if export_format not in FORMATS:
        raise DomainValidationError("format must be csv or jsonl", errors={"format": ["invalid"]})
    content_type = "text/csv" if export_format == "csv" else "application/x-ndjson"
    response = StreamingHttpResponse(
        stream_rows(rows, fields, export_format), content_type=content_type
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.{export_format}"'
    return response


class StudyJudgmentsExportApi(ResearcherAPIView):
    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["csv", "jsonl"], default="jsonl")],
        responses={200: OpenApiResponse(description="CSV or JSONL, one row per judgment")},
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse:
        study = study_for_view(user=request.user, slug=slug)
        return export_response(
            selectors.judgment_export_rows(study=study),
            selectors.JUDGMENT_EXPORT_FIELDS,
            request.query_params.get("format", "jsonl"),
            f"{study.slug}-judgments",
        )


# --- any signed-in user ---------------------------------------------------------------------


class MeApi(APIView):
    """Who the credentials belong to and their roles: lets a pipeline or CLI check its token
    before it submits anything. Nothing but authentication runs, so the rater-loop benchmark
    uses it as the framework floor."""

    class MeOutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeOutputSerializer)
    def get(self, request: Request) -> Response:
        user = request.user
        return Response({"username": user.get_username(), "roles": sorted(roles.role_names(user))})


# --- raters ---------------------------------------------------------------------------------


class MyStudiesApi(RaterAPIView):
    class MyStudiesOutputSerializer(serializers.Serializer):
        slug = serializers.CharField()
        name = serializers.CharField()
        instructions = serializers.CharField()
        status = serializers.CharField()
        judged_by_me = serializers.IntegerField()
        total_items = serializers.IntegerField()

    @extend_schema(responses=MyStudiesOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        rows = selectors.rater_study_list(rater=request.user)
        return Response(self.MyStudiesOutputSerializer(rows, many=True).data)


class BlindPairSerializer(serializers.Serializer):
    """The blinding allow-list for the rater API: slots, never systems."""

    class ResponseSerializer(serializers.Serializer):
        slot = serializers.IntegerField()
        text = serializers.CharField()

    assignment = serializers.IntegerField(source="assignment_id")
    study = serializers.CharField()
    instructions = serializers.CharField()
    prompt = serializers.CharField()
    responses = serializers.SerializerMethodField()
    leased_until = serializers.DateTimeField()

    def get_responses(self, pair: selectors.BlindPair) -> list[dict]:
        return [{"slot": 1, "text": pair.slot_1}, {"slot": 2, "text": pair.slot_2}]


class QueueNextApi(RaterAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("study", str, required=True),
            OpenApiParameter(
                "exclude", str, description="comma-separated assignment ids already shown"
            ),
        ],
        responses={200: BlindPairSerializer, 204: OpenApiResponse(description="nothing left")},
    )
    def get(self, request: Request) -> Response:
        slug = request.query_params.get("study", "")
        if not slug:
            raise DomainValidationError(
                "the 'study' parameter is required", errors={"study": ["required"]}
            )
        exclude_raw = request.query_params.get("exclude", "")
        try:
            exclude = [int(part) for part in exclude_raw.split(",") if part.strip()]
        except ValueError as exc:
            raise DomainValidationError("exclude must be comma-separated ids") from exc
        pair = services.pair_next(slug=slug, rater=request.user, exclude_ids=exclude)
        if pair is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(BlindPairSerializer(selectors.blind_pair_from_lease(pair)).data)


class JudgmentSubmitApi(RaterAPIView):
    class JudgmentSubmitInputSerializer(serializers.Serializer):
        choice = serializers.ChoiceField(choices=["1", "2", "tie", "both_bad"])
        rationale = serializers.CharField(
            allow_blank=True, required=False, default="", max_length=10_000
        )
        time_ms = serializers.IntegerField(
            min_value=0, max_value=86_400_000, required=False, allow_null=True
        )

    class JudgmentSubmitOutputSerializer(serializers.Serializer):
        assignment = serializers.IntegerField(source="assignment_id")
        choice = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(
        request=JudgmentSubmitInputSerializer,
        responses={
            201: JudgmentSubmitOutputSerializer,
            409: OpenApiResponse(description="already judged"),
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        serializer = self.JudgmentSubmitInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        judgment = services.judgment_submit(
            assignment_id=assignment_id, rater=request.user, **serializer.validated_data
        )
        choice_label = {"left": "1", "right": "2"}.get(judgment.choice, judgment.choice)
        return Response(
            {
                "assignment": judgment.assignment_id,
                "choice": choice_label,
                "created_at": judgment.created_at.isoformat(),
            },
            status=status.HTTP_201_CREATED,
        )


class AssignmentSkipApi(RaterAPIView):
    @extend_schema(
        request=None,
        responses={200: inline_serializer("Skipped", {"assignment": serializers.IntegerField()})},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = services.assignment_skip(assignment_id=assignment_id, rater=request.user)
        return Response({"assignment": assignment.pk})


class AssignmentRenewApi(RaterAPIView):
    @extend_schema(
        request=None,
        responses={
            200: inline_serializer("Renewed", {"leased_until": serializers.DateTimeField()})
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = services.assignment_renew(assignment_id=assignment_id, rater=request.user)
        return Response({"leased_until": assignment.leased_until.isoformat()})


class AdjudicationApi(ResearcherAPIView):
    class AdjudicationInputSerializer(serializers.Serializer):
        preference = serializers.ChoiceField(choices=["base", "tuned", "tie", "both_bad"])
        rationale = serializers.CharField(max_length=10_000)

    @extend_schema(
        request=AdjudicationInputSerializer,
        responses={
            200: inline_serializer(
                "Adjudicated",
                {"item_id": serializers.CharField(), "preference": serializers.CharField()},
            )
        },
    )
    def post(self, request: Request, slug: str, external_id: str) -> Response:
        study = study_for_change(user=request.user, slug=slug)
        serializer = self.AdjudicationInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        adjudication = services.adjudication_record(
            study=study, external_id=external_id, user=request.user, **serializer.validated_data
        )
        return Response(
            {
                "item_id": external_id,
                "preference": adjudication.preference,
                "by": request.user.username,
            }
        )
