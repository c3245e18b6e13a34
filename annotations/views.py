"""Server-rendered pages: the rater's study list and rating page, the researcher's study pages.

The rating page itself only carries the study's opaque id and rater title (never its slug,
name or models); pairs arrive through the blinded API. Rater pages are never cached, so
Back/Forward cannot show a pair or a count the server no longer holds."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from annotations import dashboard, dashboard_plots, permissions, roles, selectors, services
from annotations.errors import DomainError, RaterRemovedError
from annotations.forms import (
    DisplayPrefixesForm,
    ImportConfirmForm,
    ImportForm,
    RatersForm,
    StatusForm,
    StudyForm,
    StudySettingsForm,
)
from annotations.models import SIGN_OFF_STATES, STUDY_TRANSITIONS, StudyStatus
from annotations.permissions import (
    page_errors,
    rater_required,
    researcher_required,
    study_for_change,
    study_for_view,
)
from annotations.queue_rules import KEY_GUARD_MS, WITHDRAW_SECONDS
from annotations.views_raters import notice_page


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if roles.is_researcher(request.user):
        return redirect("study-list")
    if roles.is_release_owner(request.user):
        return redirect("run-list")
    if roles.is_rater(request.user):
        return redirect("rater-home")
    raise PermissionDenied("your account has no role yet; ask an admin")


@never_cache
@rater_required
def rater_home(request: HttpRequest) -> HttpResponse:
    rows = selectors.rater_study_list(rater=request.user)
    return render(request, "annotations/rater_home.html", {"studies": rows})


@never_cache
@rater_required
def rate(request: HttpRequest, study: UUID) -> HttpResponse:
    try:
        row = selectors.rater_study_get(public_id=study, rater=request.user)
    except RaterRemovedError:
        return notice_page(
            request,
            title="No longer in this study",
            message="You are no longer in this study; the judgments you saved are kept. "
            "Thank you for your work.",
            status=410,
        )
    except DomainError as exc:
        raise PermissionDenied(exc.message) from exc
    return render(
        request,
        "annotations/rate.html",
        {
            "study": row,
            "title": row.title_for_raters,
            "heartbeat_seconds": max(30, row.lease_minutes * 60 // 3),
            "undo_seconds": WITHDRAW_SECONDS,
            "guard_ms": KEY_GUARD_MS,
        },
    )


@never_cache
@rater_required
def rate_by_slug(request: HttpRequest, slug: str) -> HttpResponse:
    """Old rating links named the study by slug: send the rater to its opaque URL."""
    try:
        study = selectors.rater_study_get(slug=slug, rater=request.user)
    except DomainError as exc:
        raise PermissionDenied(exc.message) from exc
    return redirect("rate", study=study.public_id)


@researcher_required
def study_list(request: HttpRequest) -> HttpResponse:
    studies = permissions.studies_visible_to(request.user, selectors.study_list())
    studies = studies.filter(archived_at__isnull=True)
    return render(request, "annotations/study_list.html", {"studies": studies})


@researcher_required
@require_http_methods(["GET", "POST"])
def study_create(request: HttpRequest) -> HttpResponse:
    form = StudyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            study = services.study_create(created_by=request.user, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(
                request, f"Study {study.slug} created. Next: import its pairs (with a preview)."
            )
            return redirect("study-import", slug=study.slug)
    return render(request, "annotations/study_form.html", {"form": form})


@researcher_required
def study_detail(request: HttpRequest, slug: str) -> HttpResponse:
    study = page_errors(lambda: study_for_view(user=request.user, slug=slug))
    context = {
        "study": study,
        "can_edit": permissions.can_edit_study(request.user, study),
        "progress": selectors.study_progress(study=study),
        "blockers": selectors.study_blockers(study=study),
        "raters_form": RatersForm(),
        "transitions": status_moves(study),
        "setup": selectors.study_setup(study=study),
        "prefixes_form": DisplayPrefixesForm(
            initial={"prefixes": "\n".join(study.display_strip_prefixes or [])}
        ),
        "blinding": study.blinding_audit,
        "blinding_tells": (
            [
                ("raw outputs", study.blinding_audit["tells"]),
                ("as raters see them", study.blinding_audit["tells_displayed"]),
            ]
            if study.blinding_audit
            else []
        ),
    }
    return render(request, "annotations/study_detail.html", context)


# The moves a researcher makes from each state, with the button that makes each; entering
# signed_off or rejected is a release sign-off's (scoring.release), never offered here.
STATUS_MOVE_LABELS = {
    StudyStatus.OPEN: "Open: raters get pairs",
    StudyStatus.CLOSED: "Close: raters stop getting pairs",
    StudyStatus.RECONCILING: "Move to reconciling",
    StudyStatus.READY: "Mark ready for sign-off",
}


def status_moves(study) -> list[tuple[str, str]]:
    if study.archived_at is not None:
        return []
    allowed = STUDY_TRANSITIONS.get(study.status, frozenset()) - SIGN_OFF_STATES
    return [(target, label) for target, label in STATUS_MOVE_LABELS.items() if target in allowed]


@researcher_required
@require_http_methods(["GET", "POST"])
def study_import(request: HttpRequest, slug: str) -> HttpResponse:
    """Step one of an import: the upload is parsed (as the import will parse it) and previewed,
    every bad line listed; nothing is written. A clean upload is kept server-side until the
    researcher confirms it (`study_import_confirm`)."""
    study = page_errors(lambda: study_for_change(user=request.user, slug=slug))
    form = ImportForm(request.POST or None, request.FILES or None)
    context = {"study": study, "form": form, "preview": None, "confirm_form": None}
    if request.method == "POST" and form.is_valid():
        upload, tuned = form.cleaned_data["file"], form.cleaned_data.get("tuned_file")
        pending = services.PendingImport(
            file_format=form.cleaned_data["format"],
            unmatched=form.cleaned_data["unmatched"],
            file_name=upload.name,
            data=upload.read(),
            tuned_name=tuned.name if tuned is not None else "",
            tuned_data=tuned.read() if tuned is not None else None,
        )
        try:
            parsed = services.upload_parse(**vars(pending))
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            preview = services.import_preview(study=study, parsed=parsed, source=upload.name)
            context["preview"] = preview
            if preview.ok:
                token = services.pending_import_keep(user=request.user, study=study, upload=pending)
                context["confirm_form"] = ImportConfirmForm(initial={"token": token})
    return render(request, "annotations/study_import.html", context)


@researcher_required
@require_POST
def study_import_confirm(request: HttpRequest, slug: str) -> HttpResponse:
    """Step two: imports the upload kept at the preview, parsed again on the server, all or
    nothing."""
    study = page_errors(lambda: study_for_change(user=request.user, slug=slug))
    form = ImportConfirmForm(request.POST)
    pending = (
        services.pending_import_take(
            token=form.cleaned_data["token"], user=request.user, study=study
        )
        if form.is_valid()
        else None
    )
    if pending is None:
        messages.error(
            request,
            "That preview is no longer waiting (it expired, or was imported already): "
            "upload the file again.",
        )
        return redirect("study-import", slug=slug)
    try:
        parsed = services.upload_parse(**vars(pending))
        summary = services.items_import(
            study=study, parsed=parsed, source=pending.file_name, actor=request.user
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        for line in exc.errors if isinstance(exc.errors, list) else []:
            messages.error(request, line)
        return redirect("study-import", slug=slug)
    messages.success(request, f"Imported {summary.items} items.")
    for name, skipped in summary.skipped.items():
        first = "; ".join(skipped["first"])
        messages.warning(request, f"Skipped {skipped['count']} unmatched row(s) of {name}: {first}")
    if summary.blinding is not None and summary.blinding["at_risk"]:
        when = (
            "and the study is open: they see these tells now"
            if study.status == StudyStatus.OPEN
            else "; see the audit below before opening the study"
        )
        messages.warning(
            request,
            "Blinding audit: raters could tell the sides apart from surface features "
            f"alone {when}.",
        )
    return redirect(f"{reverse('study-detail', kwargs={'slug': slug})}#blinding-audit")


@researcher_required
@require_http_methods(["GET", "POST"])
def study_settings(request: HttpRequest, slug: str) -> HttpResponse:
    """Votes per item, gold rate, rater instructions and the other settings a study may change
    after it was created."""
    study = page_errors(lambda: study_for_change(user=request.user, slug=slug))
    initial = {name: getattr(study, name) for name in StudySettingsForm.base_fields}
    form = StudySettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.study_update(study=study, actor=request.user, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Settings saved.")
            return redirect("study-detail", slug=slug)
    context = {"study": study, "form": form, "setup": selectors.study_setup(study=study)}
    return render(request, "annotations/study_settings.html", context)


@researcher_required
@require_POST
def study_status(request: HttpRequest, slug: str) -> HttpResponse:
    study = page_errors(lambda: study_for_change(user=request.user, slug=slug))
    form = StatusForm(request.POST)
    if form.is_valid():
        try:
            study = services.study_update(
                study=study,
                actor=request.user,
                status=form.cleaned_data["status"],
                acknowledge_blinding_risk=form.cleaned_data["acknowledge_blinding_risk"],
                reason=form.cleaned_data["reason"],
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Study is now {study.get_status_display().lower()}.")
    else:
        messages.error(request, form.errors.as_text())
    return redirect(f"{reverse('study-detail', kwargs={'slug': slug})}#status")


@researcher_required
@require_POST
def study_display_prefixes(request: HttpRequest, slug: str) -> HttpResponse:
    study = page_errors(lambda: study_for_change(user=request.user, slug=slug))
    form = DisplayPrefixesForm(request.POST)
    if form.is_valid():
        try:
            services.study_update(
                study=study,
                actor=request.user,
                display_strip_prefixes=form.cleaned_data["prefixes"],
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Display prefixes saved; the blinding audit ran again.")
    else:
        messages.error(request, form.errors.as_text())
    return redirect("study-detail", slug=slug)


@researcher_required
@require_POST
def study_blinding_audit(request: HttpRequest, slug: str) -> HttpResponse:
    study = page_errors(lambda: study_for_change(user=request.user, slug=slug))
    services.blinding_audit_run(study=study)
    messages.success(request, "Blinding audit updated.")
    return redirect("study-detail", slug=slug)


# --- the live study dashboard ----------------------------------------------------------------

# How often the dashboard page asks the server for fresh figures.
DASHBOARD_REFRESH_SECONDS = 10


def _svg(markup: str) -> SafeString:
    """`annotations.dashboard_plots`' SVG: drawn from counts, dates and rater names it escapes,
    so nothing a user typed reaches the page unescaped."""
    return mark_safe(markup)  # noqa: S308


def _dashboard_context(request: HttpRequest, slug: str) -> dict:
    study = page_errors(lambda: study_for_view(user=request.user, slug=slug))
    read = dashboard.study_dashboard_read(study=study)
    board = read.board
    # The grid shows who rated in the span, busiest first.
    active = sorted(
        (r for r in board.raters if any(r.hourly)), key=lambda r: (-sum(r.hourly), r.rater)
    )
    grid = (
        dashboard_plots.rater_grid_svg(
            board.hour_starts, tuple((r.rater, r.hourly) for r in active)
        )
        if active
        else ""
    )
    plots = {
        "hourly": _svg(dashboard_plots.hourly_svg(tuple(board.hourly))),
        "daily": _svg(dashboard_plots.daily_svg(tuple(board.daily)) if board.daily else ""),
        "raters": _svg(grid),
    }
    return {
        "study": study,
        "board": board,
        "read": read,
        "plots": plots,
        "grid_max": dashboard_plots.MAX_GRID_RATERS,
        "grid_hidden": max(0, len(active) - dashboard_plots.MAX_GRID_RATERS),
        "refresh_seconds": DASHBOARD_REFRESH_SECONDS,
    }


@never_cache
@researcher_required
def study_dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    """The study's pace, completion estimate, raters and waiting items; the page replaces its
    figures with the fragment below every few seconds."""
    return render(request, "annotations/study_dashboard.html", _dashboard_context(request, slug))


@never_cache
@researcher_required
def study_dashboard_fragment(request: HttpRequest, slug: str) -> HttpResponse:
    """The dashboard's figures alone, as the page polls them."""
    return render(request, "annotations/_study_dashboard.html", _dashboard_context(request, slug))
