from __future__ import annotations

from django.urls import path

from annotations import api, api_access

urlpatterns = [
    path("studies/", api.StudyListCreateApi.as_view(), name="api-studies"),
    path("studies/<slug:slug>/", api.StudyDetailApi.as_view(), name="api-study"),
    path(
        "studies/<slug:slug>/archive/",
        api_access.StudyArchiveApi.as_view(),
        name="api-study-archive",
    ),
    path(
        "studies/<slug:slug>/reopen/", api_access.StudyReopenApi.as_view(), name="api-study-reopen"
    ),
    path(
        "studies/<slug:slug>/collaborators/",
        api_access.StudyCollaboratorsApi.as_view(),
        name="api-study-collaborators",
    ),
    path(
        "studies/<slug:slug>/collaborators/<str:username>/",
        api_access.StudyCollaboratorDeleteApi.as_view(),
        name="api-study-collaborator",
    ),
    path("studies/<slug:slug>/import/", api.StudyImportApi.as_view(), name="api-study-import"),
    path("studies/<slug:slug>/raters/", api.StudyRatersApi.as_view(), name="api-study-raters"),
    path(
        "studies/<slug:slug>/blinding-audit/",
        api.StudyBlindingAuditApi.as_view(),
        name="api-study-blinding-audit",
    ),
    path(
        "studies/<slug:slug>/progress/", api.StudyProgressApi.as_view(), name="api-study-progress"
    ),
    path(
        "studies/<slug:slug>/dashboard/",
        api.StudyDashboardApi.as_view(),
        name="api-study-dashboard",
    ),
    path(
        "studies/<slug:slug>/judgments/",
        api.StudyJudgmentsExportApi.as_view(),
        name="api-study-judgments",
    ),
    path(
        "studies/<slug:slug>/items/<str:external_id>/adjudication/",
        api.AdjudicationApi.as_view(),
        name="api-adjudication",
    ),
    path("me/", api.MeApi.as_view(), name="api-me"),
    path("me/studies/", api.MyStudiesApi.as_view(), name="api-my-studies"),
    path(
        "rate/<uuid:study>/progress/",
        api.MyStudyProgressApi.as_view(),
        name="api-my-study-progress",
    ),
    path("queue/next/", api.QueueNextApi.as_view(), name="api-queue-next"),
    path(
        "assignments/<int:assignment_id>/judgment/",
        api.JudgmentSubmitApi.as_view(),
        name="api-judgment",
    ),
    path("assignments/<int:assignment_id>/skip/", api.AssignmentSkipApi.as_view(), name="api-skip"),
    path(
        "assignments/<int:assignment_id>/renew/", api.AssignmentRenewApi.as_view(), name="api-renew"
    ),
]
