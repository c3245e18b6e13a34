"""Researcher pages for pre-scoring: job progress, aggregates, identity flags."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

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
    from scoring.report_html import render_report_html
    from scoring.reports import ReportOptions, build_report

    study = annotation_selectors.study_get(slug=slug)
    exclude = request.GET.get("exclude_flagged_raters") in ("1", "true", "yes")
    report = build_report(study=study, options=ReportOptions(exclude_flagged_raters=exclude))
    return HttpResponse(render_report_html(report))
