"""Researcher pages for pre-scoring: job progress, aggregates, identity flags."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from annotations import selectors as annotation_selectors
from annotations.errors import DomainError
from annotations.permissions import researcher_required
from scoring import selectors, services


@researcher_required
def study_scores(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        study = annotation_selectors.study_get(slug=slug)
    except DomainError as exc:
        raise PermissionDenied(exc.message) from exc
    jobs = [selectors.job_progress(job=job) for job in selectors.study_jobs(study=study)]
    context = {
        "study": study,
        "jobs": jobs,
        "scores": selectors.study_scores(study=study),
        "flags": selectors.identity_flag_list(study=study),
    }
    return render(request, "scoring/study_scores.html", context)


@researcher_required
@require_POST
def prescore_start(request: HttpRequest, slug: str) -> HttpResponse:
    study = annotation_selectors.study_get(slug=slug)
    try:
        job = services.scoring_job_start(study=study, created_by=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Scoring job {job.pk} started.")
    return redirect("study-scores", slug=slug)


@researcher_required
@require_POST
def identity_decide(request: HttpRequest, slug: str, flag_id: int) -> HttpResponse:
    try:
        services.identity_flag_decide(
            flag_id=flag_id,
            decision=request.POST.get("decision", ""),
            user=request.user,
            edited_text=request.POST.get("edited_text", ""),
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("study-scores", slug=slug)


@researcher_required
def study_report(request: HttpRequest, slug: str) -> HttpResponse:
    """The HTML report, built from the same dict as the API and the exports."""
    from scoring.release import study_report
    from scoring.report_html import render_report_html
    from scoring.reports import ReportOptions

    study = annotation_selectors.study_get(slug=slug)
    exclude = request.GET.get("exclude_flagged_raters") in ("1", "true", "yes")
    options = ReportOptions(exclude_flagged_raters=exclude)
    report = study_report(study=study, options=options)
    return HttpResponse(render_report_html(report))


def release_access_required(view):
    from functools import wraps

    from django.contrib.auth.decorators import login_required

    from annotations import roles

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not (roles.is_researcher(request.user) or roles.is_release_owner(request.user)):
            raise PermissionDenied("researcher or release owner role required")
        return view(request, *args, **kwargs)

    return wrapper


@release_access_required
def run_signoff(request: HttpRequest, run_id: str) -> HttpResponse:
    """The sign-off page: every criterion with its evidence, the verdict, past sign-offs, and
    the approve / reject form for release owners."""
    from annotations import roles
    from scoring.release import decision_get, run_get, signoff_record

    try:
        run = run_get(run_id=run_id)
    except DomainError as exc:
        raise PermissionDenied(exc.message) from exc
    if request.method == "POST":
        try:
            signoff_record(
                study=run.study,
                actor=request.user,
                decision=request.POST.get("decision", ""),
                comment=request.POST.get("comment", ""),
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Your sign-off is recorded.")
        return redirect("run-signoff", run_id=run_id)
    context = {
        "run": run,
        "decision": decision_get(study=run.study),
        "can_sign": roles.is_release_owner(request.user),
    }
    return render(request, "scoring/run_signoff.html", context)


@researcher_required
@require_http_methods(["GET", "POST"])
def study_disagreements(request: HttpRequest, slug: str) -> HttpResponse:
    """The disagreement review: items where raters split or the judge disagrees with the human
    majority, filtered and paginated, each with both responses, every vote with its rationale
    and time, the judge's verdict and evidence, and a form to adjudicate (no ruling
    preselected; `adjudication_record` validates and audits)."""
    from annotations.models import Preference
    from annotations.services import adjudication_record
    from scoring.review import (
        ADJUDICATED_CHOICES,
        ReviewFilters,
        disagreement_review,
        review_filters_from,
    )

    try:
        study = annotation_selectors.study_get(slug=slug)
    except DomainError as exc:
        raise Http404(exc.message) from exc
    params = request.POST if request.method == "POST" else request.GET
    try:
        filters = review_filters_from(params)
    except DomainError as exc:
        messages.error(request, exc.message)
        filters = ReviewFilters()
    if request.method == "POST":
        item_id = request.POST.get("item_id", "")
        try:
            adjudication_record(
                study=study,
                external_id=item_id,
                preference=request.POST.get("preference", ""),
                rationale=request.POST.get("rationale", ""),
                user=request.user,
            )
        except DomainError as exc:
            messages.error(request, f"Item {item_id} not adjudicated: {exc.message}.")
        else:
            messages.success(request, f"Item {item_id} adjudicated.")
        query = filters.as_query()
        page = request.POST.get("page", "")
        if page.isdigit():
            query["page"] = page
        anchor = request.POST.get("anchor", "")
        url = reverse("study-disagreements", kwargs={"slug": slug})
        return redirect(
            f"{url}?{urlencode(query)}" + (f"#item-{anchor}" if anchor.isdigit() else "")
        )
    review = disagreement_review(study=study, filters=filters, page=request.GET.get("page", 1))
    context = {
        "study": study,
        "review": review,
        "adjudicated_choices": ADJUDICATED_CHOICES,
        "preferences": Preference.choices,
        "filter_query": urlencode(filters.as_query()),
    }
    return render(request, "scoring/disagreements.html", context)
