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
def study_disagreements(request: HttpRequest, slug: str) -> HttpResponse:
    """The disagreement queue: items where raters split or the judge disagrees with the human
    majority, with the votes, the judge's probability and a form to adjudicate."""
    from annotations.services import adjudication_record
    from scoring.reports import ReportOptions, build_report

    study = annotation_selectors.study_get(slug=slug)
    if request.method == "POST":
        try:
            adjudication_record(
                study=study,
                external_id=request.POST.get("item_id", ""),
                preference=request.POST.get("preference", ""),
                rationale=request.POST.get("rationale", ""),
                user=request.user,
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Item {request.POST.get('item_id')} adjudicated.")
        return redirect("study-disagreements", slug=slug)
    report = build_report(study=study, options=ReportOptions(n_resamples=0))
    prompts = dict(
        study.items.filter(
            external_id__in=[d["item_id"] for d in report["disagreements"]]
        ).values_list("external_id", "prompt")
    )
    rows = [{**d, "prompt": prompts.get(d["item_id"], "")} for d in report["disagreements"]]
    return render(request, "scoring/disagreements.html", {"study": study, "rows": rows})
