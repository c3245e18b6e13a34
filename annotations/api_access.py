"""API of study governance, /api/v1/studies/SLUG/...: archive, reopen (release owners) and
collaborators. Access rules: `annotations.permissions`."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import permissions, services
from annotations.api import ResearcherAPIView, StudyOutputSerializer
from annotations.permissions import study_for_delete, study_for_view


class StudyArchiveApi(ResearcherAPIView):
    class StudyArchiveInputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=StudyArchiveInputSerializer, responses=StudyOutputSerializer)
    def post(self, request: Request, slug: str) -> Response:
        serializer = self.StudyArchiveInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        study = services.study_archive(
            study=study_for_delete(user=request.user, slug=slug),
            actor=request.user,
            reason=serializer.validated_data["reason"],
        )
        return Response(StudyOutputSerializer(study).data)


class StudyReopenApi(APIView):
    # The service checks the release-owner role (403) and the state (409).
    permission_classes = [IsAuthenticated, permissions.IsResearcherOrReleaseOwner]

    class StudyReopenInputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=10_000)

    @extend_schema(
        request=StudyReopenInputSerializer,
        responses={200: inline_serializer("Reopened", {"state": serializers.CharField()})},
    )
    def post(self, request: Request, slug: str) -> Response:
        serializer = self.StudyReopenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        study = services.study_reopen(
            study=study_for_view(user=request.user, slug=slug),
            actor=request.user,
            reason=serializer.validated_data["reason"],
        )
        return Response({"study": study.slug, "state": study.status})


class StudyCollaboratorsApi(ResearcherAPIView):
    class CollaboratorInputSerializer(serializers.Serializer):
        username = serializers.CharField()

    @extend_schema(
        responses=inline_serializer(
            "Collaborators",
            {"owner": serializers.CharField(), "collaborators": serializers.ListField()},
        )
    )
    def get(self, request: Request, slug: str) -> Response:
        study = study_for_view(user=request.user, slug=slug)
        names = study.collaborations.order_by("user__username").values_list(
            "user__username", flat=True
        )
        owner = study.created_by.get_username() if study.created_by else None
        return Response({"owner": owner, "collaborators": list(names)})

    @extend_schema(request=CollaboratorInputSerializer, responses={201: None})
    def post(self, request: Request, slug: str) -> Response:
        study = study_for_delete(user=request.user, slug=slug)
        serializer = self.CollaboratorInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.collaborator_add(
            study=study, username=serializer.validated_data["username"], actor=request.user
        )
        return self.get(request, slug)


class StudyCollaboratorDeleteApi(ResearcherAPIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, username: str) -> Response:
        study = study_for_delete(user=request.user, slug=slug)
        services.collaborator_remove(study=study, username=username, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
