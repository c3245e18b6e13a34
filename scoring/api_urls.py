from __future__ import annotations

from django.urls import path

from scoring import api

urlpatterns = [
    path("studies/<slug:slug>/prescore/", api.PrescoreStartApi.as_view(), name="api-prescore"),
    path("studies/<slug:slug>/scores/", api.StudyScoresApi.as_view(), name="api-study-scores"),
    path(
        "studies/<slug:slug>/scores/export/",
        api.StudyScoresExportApi.as_view(),
        name="api-study-scores-export",
    ),
    path(
        "studies/<slug:slug>/identity-flags/",
        api.IdentityFlagListApi.as_view(),
        name="api-identity-flags",
    ),
    path(
        "identity-flags/<int:flag_id>/decision/",
        api.IdentityFlagDecideApi.as_view(),
        name="api-identity-decide",
    ),
    path("scoring-jobs/<int:job_id>/", api.ScoringJobApi.as_view(), name="api-scoring-job"),
    path("studies/<slug:slug>/report/", api.StudyReportApi.as_view(), name="api-study-report"),
    path(
        "studies/<slug:slug>/disagreements/",
        api.DisagreementListApi.as_view(),
        name="api-study-disagreements",
    ),
    path("studies/<slug:slug>/exports/", api.ExportStartApi.as_view(), name="api-export-start"),
    path("exports/<int:export_id>/", api.ExportStatusApi.as_view(), name="api-export"),
    path("runs/", api.RunSubmitApi.as_view(), name="api-runs"),
    path("runs/<str:run_id>/", api.RunDetailApi.as_view(), name="api-run"),
    path("runs/<str:run_id>/decision/", api.RunDecisionApi.as_view(), name="api-run-decision"),
    path("runs/<str:run_id>/signoff/", api.RunSignOffApi.as_view(), name="api-run-signoff"),
    path(
        "signoffs/<int:signoff_id>/record/",
        api.SignOffRecordApi.as_view(),
        name="api-signoff-record",
    ),
    path("studies/<slug:slug>/policy/", api.StudyPolicyApi.as_view(), name="api-study-policy"),
    path(
        "studies/<slug:slug>/transition/",
        api.StudyTransitionApi.as_view(),
        name="api-study-transition",
    ),
    path("audit/", api.AuditLogApi.as_view(), name="api-audit"),
    path(
        "exports/<int:export_id>/download/",
        api.ExportDownloadApi.as_view(),
        name="api-export-download",
    ),
]
