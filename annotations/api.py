"""REST API, /api/v1/: one view per use case; views validate, call a service or selector,
serialize. Rater-facing output serializers list their fields explicitly: they are how blinding
would leak, so they carry no system, model name or output id."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

from django.http import StreamingHttpResponse
from django.utils.cache import add_never_cache_headers
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

from annotations import dashboard, pace, permissions, roles, selectors, services
from annotations.errors import DomainValidationError
from annotations.exporting import FORMATS, stream_rows
from annotations.importers import UNMATCHED_CHOICES
from annotations.models import QueueOrder, StudyStatus, TaskType
from annotations.permissions import (
    IsRater,
    IsResearcher,
    IsResearcherOrReleaseOwnerReading,
    study_for_change,
    study_for_delete,
    study_for_view,
)
from annotations.rendering import markdown_html


class ResearcherAPIView(APIView):
    permission_classes = [IsAuthenticated, IsResearcher]


class RaterAPIView(APIView):
    """A rater-facing endpoint. Every answer is `Cache-Control: no-store`: a pair or a count
    served from the browser's cache (Back/Forward) would show what the server no longer
    holds."""

    permission_classes = [IsAuthenticated, IsRater]

    def finalize_response(self, request: Request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        add_never_cache_headers(response)
        return response


# --- studies --------------------------------------------------------------------------------


class StudyOutputSerializer(serializers.Serializer):
    slug = serializers.CharField()
    public_id = serializers.UUIDField()
    name = serializers.CharField()
    rater_title = serializers.CharField()
    task_type = serializers.CharField()
    overlap = serializers.IntegerField()
    max_overlap = serializers.IntegerField()
    instructions = serializers.CharField()
    status = serializers.CharField()
    base_model = serializers.CharField()
    tuned_model = serializers.CharField()
    gold_rate = serializers.FloatField()
    min_time_ms = serializers.IntegerField(allow_null=True)
    lease_minutes = serializers.IntegerField()
    queue_order = serializers.CharField()
    settings = serializers.JSONField()
    display_strip_prefixes = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()


class StudyFieldsSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    rater_title = serializers.CharField(
        allow_blank=True,
        max_length=200,
        required=False,
        help_text="what raters see; blank: a neutral title (never the internal name)",
    )
    task_type = serializers.ChoiceField(choices=TaskType.choices)
    overlap = serializers.IntegerField(min_value=1, max_value=50, default=3)
    max_overlap = serializers.IntegerField(min_value=1, max_value=100, required=False)
    instructions = serializers.CharField(allow_blank=True, required=False)
    status = serializers.ChoiceField(choices=StudyStatus.choices, required=False)
    base_model = serializers.CharField(allow_blank=True, max_length=200, required=False)
    tuned_model = serializers.CharField(allow_blank=True, max_length=200, required=False)
    gold_rate = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    min_time_ms = serializers.IntegerField(
        min_value=0,
        required=False,
        allow_null=True,
        help_text="flag judgments faster than this (ms); null: from the pair's length; 0: never",
    )
    lease_minutes = serializers.IntegerField(min_value=1, max_value=240, required=False)
    queue_order = serializers.ChoiceField(choices=QueueOrder.choices, required=False)
    settings = serializers.JSONField(required=False)
    display_strip_prefixes = serializers.ListField(
        child=serializers.CharField(max_length=200, trim_whitespace=False),
        max_length=20,
        required=False,
        help_text="Fixed openers (e.g. 'Sure!') stripped from both outputs before raters see them",
    )


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

        acknowledge_blinding_risk = serializers.BooleanField(
            required=False,
            default=False,
            help_text="open although the blinding audit says raters could tell the sides apart",
        )
        reason = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=2_000
        )

    @extend_schema(responses=StudyOutputSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(StudyOutputSerializer(study_for_view(user=request.user, slug=slug)).data)

    @extend_schema(
        request=StudyDetailUpdateSerializer,
        responses={
            200: StudyOutputSerializer,
            409: OpenApiResponse(
                description="a disallowed move, or opening with an unacknowledged blinding risk"
            ),
        },
    )
    def patch(self, request: Request, slug: str) -> Response:
        study = study_for_change(user=request.user, slug=slug)
        serializer = self.StudyDetailUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        study = services.study_update(
            study=study,
            actor=request.user,
            acknowledge_blinding_risk=fields.pop("acknowledge_blinding_risk", False),
            reason=fields.pop("reason", ""),
            **fields,
        )
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
        unmatched = serializers.ChoiceField(
            choices=list(UNMATCHED_CHOICES),
            default="error",
            help_text="alpaca: an instruction in only one file is an error, or skipped",
        )

    @extend_schema(
        request=StudyImportInputSerializer,
        responses={
            201: inline_serializer(
                "ImportResult",
                {
                    "items": serializers.IntegerField(),
                    "skipped": serializers.DictField(),
                    "blinding_audit": serializers.DictField(),
                },
            ),
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
        tuned = serializer.validated_data.get("tuned_file")
        parsed = services.upload_parse(
            file_format=serializer.validated_data["format"],
            data=upload.read(),
            file_name=upload.name,
            tuned_data=tuned.read() if tuned is not None else None,
            tuned_name=tuned.name if tuned is not None else "",
            unmatched=serializer.validated_data["unmatched"],
        )
        summary = services.items_import(
            study=study, parsed=parsed, source=upload.name, actor=request.user
        )
        return Response(
            {
                "items": summary.items,
                "skipped": summary.skipped,
                "blinding_audit": blinding_audit_brief(summary.blinding),
            },
            status=status.HTTP_201_CREATED,
        )


def blinding_audit_brief(audit: dict | None) -> dict | None:
    """The headline of a blinding audit, for responses that link to the whole of it."""
    if audit is None:
        return None
    keys = (
        "auc",
        "auc_without_length",
        "auc_displayed",
        "auc_displayed_without_length",
        "at_risk",
        "tells_displayed",
        "n_outputs",
    )
    return {key: audit.get(key) for key in keys}


class StudyBlindingAuditApi(ResearcherAPIView):
    """The study's latest blinding audit (stored at import, before opening, and when the
    display prefixes change); POST runs it again."""

    class BlindingAuditOutputSerializer(serializers.Serializer):
        class TellSerializer(serializers.Serializer):
            feature = serializers.CharField()
            base_rate = serializers.FloatField()
            tuned_rate = serializers.FloatField()
            fix = serializers.CharField(allow_null=True)
            prefix = serializers.CharField(required=False)

        class NormalisationSerializer(serializers.Serializer):
            kind = serializers.CharField()
            enabled = serializers.BooleanField()
            removes = serializers.ListField(child=serializers.CharField())
            prefix = serializers.CharField(required=False)

        study = serializers.CharField()
        auc = serializers.FloatField(allow_null=True)
        auc_without_length = serializers.FloatField(allow_null=True)
        tells = TellSerializer(many=True)
        length = serializers.DictField()
        auc_displayed = serializers.FloatField(allow_null=True)
        auc_displayed_without_length = serializers.FloatField(allow_null=True)
        tells_displayed = TellSerializer(many=True)
        length_displayed = serializers.DictField()
        normalisations = NormalisationSerializer(many=True)
        strip_prefixes = serializers.ListField(child=serializers.CharField())
        at_risk = serializers.BooleanField()
        risk_threshold = serializers.FloatField()
        n_items = serializers.IntegerField()
        n_outputs = serializers.IntegerField()
        items_in_study = serializers.IntegerField()
        sampled = serializers.BooleanField()
        folds = serializers.IntegerField()
        seed = serializers.IntegerField()
        notes = serializers.ListField(child=serializers.CharField())
        computed_at = serializers.CharField()

    def respond(self, study, audit: dict) -> Response:
        return Response(self.BlindingAuditOutputSerializer({"study": study.slug, **audit}).data)

    @extend_schema(
        responses={
            200: BlindingAuditOutputSerializer,
            404: OpenApiResponse(description="no study, or no audit run yet (POST runs one)"),
        }
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_for_view(user=request.user, slug=slug)
        audit = selectors.study_blinding_audit(study=study)
        return self.respond(study, audit)

    @extend_schema(request=None, responses={200: BlindingAuditOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_change(user=request.user, slug=slug)
        return self.respond(study, services.blinding_audit_run(study=study))


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
            study=study, usernames=serializer.validated_data["usernames"], actor=request.user
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
        excluded_items = serializers.IntegerField()
        items_complete = serializers.IntegerField()
        judgments = serializers.IntegerField()
        votes_wanted = serializers.IntegerField()
        live_leases = serializers.IntegerField()
        percent = serializers.FloatField()
        raters = StudyProgressRaterSerializer(many=True)

    class StudyBlockersOutputSerializer(serializers.Serializer):
        class BlockerSerializer(serializers.Serializer):
            reason = serializers.ChoiceField(choices=selectors.BLOCKER_REASONS)
            items = serializers.IntegerField()
            message = serializers.CharField()
            action = serializers.CharField()

        items_open = serializers.IntegerField(help_text="items still wanting votes")
        items_rateable = serializers.IntegerField(
            source="rateable", help_text="of those, items the queue can serve a rater now"
        )
        blocked = BlockerSerializer(many=True, help_text="why the others wait, what to do")

    class StudyProgressResponseSerializer(
        StudyProgressOutputSerializer, StudyBlockersOutputSerializer
    ):
        """The response: progress and why items wait (for the schema)."""

    @extend_schema(responses=StudyProgressResponseSerializer)
    def get(self, request: Request, slug: str) -> Response:
        study = study_for_view(user=request.user, slug=slug)
        progress = selectors.study_progress(study=study)
        blockers = selectors.study_blockers(study=study)
        return Response(
            self.StudyProgressOutputSerializer(progress).data
            | self.StudyBlockersOutputSerializer(blockers).data
        )


class StudyDashboardApi(ResearcherAPIView):
    """The live dashboard's figures (the page's, as JSON): the pace, the completion estimate,
    each rater's activity and flags, what waits and why. Never cached."""

    class BucketSerializer(serializers.Serializer):
        start = serializers.DateTimeField()
        judgments = serializers.IntegerField()
        flagged_fast = serializers.IntegerField()

    class EstimateSerializer(serializers.Serializer):
        status = serializers.CharField(
            help_text="why there is or is no date: " + ", ".join(pace.ESTIMATE_STATUSES)
        )
        message = serializers.CharField()
        votes_remaining = serializers.IntegerField()
        window_hours = serializers.IntegerField(
            allow_null=True, help_text="the recent window the rate was taken from"
        )
        judgments_in_window = serializers.IntegerField()
        per_hour = serializers.FloatField(allow_null=True)
        hours_left = serializers.FloatField(allow_null=True)
        finish_at = serializers.DateTimeField(
            allow_null=True, help_text="only when status is 'estimated': never invented"
        )

    class RaterSerializer(serializers.Serializer):
        rater = serializers.CharField()
        judged = serializers.IntegerField()
        last_hour = serializers.IntegerField()
        last_24_hours = serializers.IntegerField()
        last_judged_at = serializers.DateTimeField(allow_null=True)
        flagged_fast = serializers.IntegerField()
        fast_share = serializers.FloatField(allow_null=True)
        gold_judged = serializers.IntegerField()
        gold_accuracy = serializers.FloatField(allow_null=True)
        skipped = serializers.IntegerField()
        leased_now = serializers.IntegerField()
        hourly = serializers.ListField(child=serializers.IntegerField())
        flags = serializers.ListField(child=serializers.ChoiceField(choices=list(pace.FLAG_LABELS)))

    class WaitingSerializer(serializers.Serializer):
        items_open = serializers.IntegerField()
        rateable = serializers.IntegerField()
        leased_now = serializers.IntegerField()
        needs_adjudication = serializers.IntegerField()
        blocked = StudyProgressApi.StudyBlockersOutputSerializer.BlockerSerializer(many=True)

    class StudyDashboardOutputSerializer(serializers.Serializer):
        generated_at = serializers.DateTimeField()
        status = serializers.CharField()
        judgments = serializers.IntegerField()
        judgments_last_hour = serializers.IntegerField()
        judgments_last_24_hours = serializers.IntegerField()
        votes_wanted = serializers.IntegerField()
        votes_done = serializers.IntegerField()
        votes_remaining = serializers.IntegerField()
        percent = serializers.FloatField()

    class SnapshotSerializer(serializers.Serializer):
        from_snapshot = serializers.BooleanField(
            help_text="a stored snapshot (a large study), not computed for this request"
        )
        refreshing = serializers.BooleanField(help_text="a newer snapshot is being computed")
        compute_seconds = serializers.FloatField(source="board.compute_seconds")
        max_age_seconds = serializers.FloatField(
            help_text="a snapshot older than this is recomputed in the background"
        )

    @extend_schema(
        responses=inline_serializer(
            "StudyDashboard",
            {
                "summary": StudyDashboardOutputSerializer(),
                "snapshot": SnapshotSerializer(),
                "estimate": EstimateSerializer(),
                "hourly": BucketSerializer(many=True),
                "daily": BucketSerializer(many=True),
                "raters": RaterSerializer(many=True),
                "waiting": WaitingSerializer(),
            },
        )
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_for_view(user=request.user, slug=slug)
        read = dashboard.study_dashboard_read(study=study)
        board = read.board
        response = Response(
            {
                "summary": self.StudyDashboardOutputSerializer(board).data,
                "snapshot": self.SnapshotSerializer(read).data,
                "estimate": self.EstimateSerializer(board.estimate).data,
                "hourly": self.BucketSerializer(board.hourly, many=True).data,
                "daily": self.BucketSerializer(board.daily, many=True).data,
                "raters": self.RaterSerializer(board.raters, many=True).data,
                "waiting": self.WaitingSerializer(board.waiting).data,
            }
        )
        add_never_cache_headers(response)
        return response


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


class RaterStudySerializer(serializers.Serializer):
    """A study as its rater sees it: opaque id and rater title, never the slug, internal name
    or models; their own progress, never anyone else's."""

    study = serializers.UUIDField(source="public_id")
    title = serializers.CharField()
    instructions = serializers.CharField()
    status = serializers.CharField()
    judged_by_me = serializers.IntegerField()
    can_judge = serializers.IntegerField()
    left_for_me = serializers.IntegerField()
    item_cap = serializers.IntegerField(
        allow_null=True, help_text="a crowd participant's most pairs; null for other raters"
    )
    completion_code = serializers.CharField(
        allow_null=True,
        help_text="a crowd participant's completion code, only once the server counts them "
        "done (their cap reached, or nothing left for them)",
    )


class MyStudiesApi(RaterAPIView):
    @extend_schema(responses=RaterStudySerializer(many=True))
    def get(self, request: Request) -> Response:
        rows = selectors.rater_study_list(rater=request.user)
        return Response(RaterStudySerializer(rows, many=True).data)


class MyStudyProgressApi(RaterAPIView):
    """The rating page's counter: judged by this rater / what this rater can judge."""

    @extend_schema(responses=RaterStudySerializer)
    def get(self, request: Request, study: UUID) -> Response:
        row = selectors.rater_progress_get(public_id=study, rater=request.user)
        return Response(RaterStudySerializer(row).data)


class BlindPairSerializer(serializers.Serializer):
    """The blinding allow-list for the rater API: slots, never systems; the study's opaque id
    and rater title, never its slug or name. With `render_html` in the context, each text also
    comes as safe HTML (`annotations.rendering`), rendered alike for both slots."""

    class ResponseSerializer(serializers.Serializer):
        slot = serializers.IntegerField()
        text = serializers.CharField()
        html = serializers.CharField(required=False)

    assignment = serializers.IntegerField(source="assignment_id")
    study = serializers.UUIDField()
    title = serializers.CharField()
    instructions = serializers.CharField()
    prompt = serializers.CharField()
    prompt_html = serializers.SerializerMethodField()
    responses = serializers.SerializerMethodField()
    leased_until = serializers.DateTimeField()

    def _html(self, text: str) -> str | None:
        return markdown_html(text) if self.context.get("render_html") else None

    def get_prompt_html(self, pair: selectors.BlindPair) -> str | None:
        return self._html(pair.prompt)

    def get_responses(self, pair: selectors.BlindPair) -> list[dict]:
        responses = []
        for slot, text in ((1, pair.slot_1), (2, pair.slot_2)):
            response = {"slot": slot, "text": text}
            if self.context.get("render_html"):
                response["html"] = markdown_html(text)
            responses.append(response)
        return responses


def study_reference(value: str) -> dict:
    """The `study` parameter as `pair_next` takes it: the opaque public id (the rating page),
    or the slug (API clients and scripts)."""
    try:
        return {"public_id": UUID(value)}
    except ValueError:
        return {"slug": value}


class QueueNextApi(RaterAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("study", str, required=True, description="public id (or slug)"),
            OpenApiParameter(
                "exclude", str, description="comma-separated assignment ids already shown"
            ),
            OpenApiParameter("render", str, enum=["html"], description="add safe HTML texts"),
        ],
        responses={200: BlindPairSerializer, 204: OpenApiResponse(description="nothing left")},
    )
    def get(self, request: Request) -> Response:
        study = request.query_params.get("study", "")
        if not study:
            raise DomainValidationError(
                "the 'study' parameter is required", errors={"study": ["required"]}
            )
        exclude_raw = request.query_params.get("exclude", "")
        try:
            exclude = [int(part) for part in exclude_raw.split(",") if part.strip()]
        except ValueError as exc:
            raise DomainValidationError("exclude must be comma-separated ids") from exc
        pair = services.pair_next(rater=request.user, exclude_ids=exclude, **study_reference(study))
        if pair is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        context = {"render_html": request.query_params.get("render") == "html"}
        return Response(
            BlindPairSerializer(selectors.blind_pair_from_lease(pair), context=context).data
        )


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
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="the client's key for this submission: a retry with the same key "
                "and choice gets the original 201 answer",
            )
        ],
        responses={
            201: JudgmentSubmitOutputSerializer,
            409: OpenApiResponse(
                description="not saved; `code` says why: already_judged, key_reused, "
                "lease_lost, study_closed, skipped, removed (the rater is no longer in the "
                "study), participant_done (a crowd participant's cap)"
            ),
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        serializer = self.JudgmentSubmitInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        judgment = services.judgment_submit(
            assignment_id=assignment_id,
            rater=request.user,
            idempotency_key=request.headers.get("Idempotency-Key") or None,
            **serializer.validated_data,
        )
        response = Response(
            {
                "assignment": judgment.assignment_id,
                "choice": services.choice_label(judgment.choice),
                "created_at": judgment.created_at.isoformat(),
            },
            status=status.HTTP_201_CREATED,
        )
        if judgment.replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "Withdrawn",
                {
                    "assignment": serializers.IntegerField(),
                    "leased_until": serializers.DateTimeField(),
                },
            ),
            409: OpenApiResponse(description="nothing to undo, too late, or study closed"),
        },
    )
    def delete(self, request: Request, assignment_id: int) -> Response:
        """Undo: takes the rater's judgment back within a minute; the pair is theirs again."""
        assignment = services.judgment_withdraw(assignment_id=assignment_id, rater=request.user)
        return Response(
            {"assignment": assignment.pk, "leased_until": assignment.leased_until.isoformat()}
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
