from __future__ import annotations

from django.urls import path

from scoring import views

urlpatterns = [
    path("studies/<slug:slug>/scores/", views.study_scores, name="study-scores"),
    path("studies/<slug:slug>/report/", views.study_report, name="study-report"),
    path("runs/", views.run_list, name="run-list"),
    path("runs/<str:run_id>/signoff/", views.run_signoff, name="run-signoff"),
    path("runs/<str:run_id>/reopen/", views.run_reopen, name="run-reopen"),
    path(
        "studies/<slug:slug>/disagreements/", views.study_disagreements, name="study-disagreements"
    ),
    path("studies/<slug:slug>/scores/start/", views.prescore_start, name="study-prescore"),
    path(
        "studies/<slug:slug>/identity/<int:flag_id>/",
        views.identity_decide,
        name="study-identity-decide",
    ),
]
