from __future__ import annotations

from django.urls import path

from annotations import views, views_raters

urlpatterns = [
    path("", views.home, name="home"),
    path("rate/", views.rater_home, name="rater-home"),
    # Raters' URLs carry the study's opaque id; the slug form only redirects to it (old links).
    path("rate/<uuid:study>/", views.rate, name="rate"),
    path("rate/<slug:slug>/", views.rate_by_slug, name="rate-by-slug"),
    # Links that let raters in: the token is the credential (no sign-in needed).
    path("invite/<str:token>/", views_raters.invite_accept, name="invite-accept"),
    path("crowd/<str:token>/", views_raters.crowd_join, name="crowd-join"),
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
    path(
        "studies/<slug:slug>/import/confirm/",
        views.study_import_confirm,
        name="study-import-confirm",
    ),
    path("studies/<slug:slug>/settings/", views.study_settings, name="study-settings"),
    path("studies/<slug:slug>/raters/", views_raters.study_raters, name="study-raters"),
    path("studies/<slug:slug>/raters/invites/", views_raters.study_invites, name="study-invites"),
    path(
        "studies/<slug:slug>/raters/invites/<int:invite_id>/revoke/",
        views_raters.study_invite_revoke,
        name="study-invite-revoke",
    ),
    path(
        "studies/<slug:slug>/raters/crowd-links/",
        views_raters.study_crowd_links,
        name="study-crowd-links",
    ),
    path(
        "studies/<slug:slug>/raters/crowd-links/<int:link_id>/deactivate/",
        views_raters.study_crowd_link_deactivate,
        name="study-crowd-link-deactivate",
    ),
    path(
        "studies/<slug:slug>/raters/<str:username>/remove/",
        views_raters.study_rater_remove,
        name="study-rater-remove",
    ),
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
