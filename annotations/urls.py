from __future__ import annotations

from django.urls import path

from annotations import views

urlpatterns = [
    path("", views.home, name="home"),
    path("rate/", views.rater_home, name="rater-home"),
    # Raters' URLs carry the study's opaque id; the slug form only redirects to it (old links).
    path("rate/<uuid:study>/", views.rate, name="rate"),
    path("rate/<slug:slug>/", views.rate_by_slug, name="rate-by-slug"),
    path("studies/", views.study_list, name="study-list"),
    path("studies/new/", views.study_create, name="study-create"),
    path("studies/<slug:slug>/", views.study_detail, name="study-detail"),
    path("studies/<slug:slug>/dashboard/", views.study_dashboard, name="study-dashboard"),
    path(
        "studies/<slug:slug>/dashboard/fragment/",
        views.study_dashboard_fragment,
        name="study-dashboard-fragment",
    ),
    path("studies/<slug:slug>/import/", views.study_import, name="study-import"),
    path("studies/<slug:slug>/raters/", views.study_raters, name="study-raters"),
    path("studies/<slug:slug>/status/", views.study_status, name="study-status"),
    path(
        "studies/<slug:slug>/display-prefixes/",
        views.study_display_prefixes,
        name="study-display-prefixes",
    ),
    path(
        "studies/<slug:slug>/blinding-audit/",
        views.study_blinding_audit,
        name="study-blinding-audit",
    ),
]
