"""Researcher pages for pre-scoring: job progress, aggregates, identity flags."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from annotations.errors import DomainError
from annotations.permissions import (
    page_errors,
    release_access_required,
    researcher_required,
    study_for_change,
    study_for_view,
)
from scoring import selectors, services


@researcher_required
def study_scores(request: HttpRequest, slug: str) -> HttpResponse:
    study = page_errors(lambda: study_for_view(user=request.user, slug=slug))
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
    study = page_errors(lambda: study_for_change(user=request.user, slug=slug))
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
    from scoring.models import IdentityFlag

    study = page_errors(lambda: study_for_change(user=request.user, slug=slug))
    if not IdentityFlag.objects.filter(pk=flag_id, item__study=study).exists():
        raise Http404(f"no identity flag {flag_id} in study {slug!r}")
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


@release_access_required
def study_report(request: HttpRequest, slug: str) -> HttpResponse:
    """The HTML report, built from the same dict as the API and the exports, under a bar with
    the way back to the study (or, for a release owner, to the run's sign-off) and the export
    buttons."""
    from annotations import permissions, roles
    from scoring.models import TrainingRun
    from scoring.release import study_report
    from scoring.report_html import MAX_DISAGREEMENTS, render_report_html
    from scoring.reports import ReportOptions, disagreement_texts

    study = page_errors(lambda: study_for_view(user=request.user, slug=slug))
    exclude = request.GET.get("exclude_flagged_raters") in ("1", "true", "yes")
    options = ReportOptions(exclude_flagged_raters=exclude)
    report = study_report(study=study, options=options)
    report = disagreement_texts(report, study=study, limit=MAX_DISAGREEMENTS)
    bar = render_to_string(
        "scoring/_report_page_bar.html",
        {
            "study": study,
            "run": TrainingRun.objects.filter(study=study).first(),
            "back_to_study": roles.is_researcher(request.user),
            "can_export": permissions.can_export_study(request.user, study),
            "exclude_flagged_raters": exclude,
        },
        request=request,
    )
    return HttpResponse(render_report_html(report, page_bar=bar, scripts=[static("js/exports.js")]))


@release_access_required
def run_list(request: HttpRequest) -> HttpResponse:
    """The release owner's home: runs awaiting sign-off first, then the others."""
    from annotations import permissions
    from annotations.models import Study, StudyStatus
    from scoring.models import TrainingRun

    visible = permissions.studies_visible_to(request.user, Study.objects.all())
    runs = list(
        TrainingRun.objects.filter(study__in=visible)
        .select_related("study")
        .order_by("-created_at")[:200]
    )
    awaiting = [r for r in runs if r.study.status == StudyStatus.READY]
    others = [r for r in runs if r.study.status != StudyStatus.READY]
    return render(request, "scoring/run_list.html", {"awaiting": awaiting, "others": others})


@release_access_required
@require_POST
def run_reopen(request: HttpRequest, run_id: str) -> HttpResponse:
    """A release owner takes a signed-off or rejected run back to reconciling, with a reason."""
    from annotations.services import study_reopen

    run = page_errors(lambda: selectors.run_for_view(run_id=run_id, user=request.user))
    try:
        study_reopen(study=run.study, actor=request.user, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The study is back in reconciling.")
    return redirect("run-signoff", run_id=run_id)


@release_access_required
def run_signoff(request: HttpRequest, run_id: str) -> HttpResponse:
    """The sign-off page: every criterion with its evidence, the verdict, past sign-offs, and
    the approve / reject form for release owners."""
    from annotations import permissions
    from annotations.selectors import audit_trail
    from scoring.release import decision_get, signoff_record

    run = page_errors(lambda: selectors.run_for_view(run_id=run_id, user=request.user))
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
        "can_sign": permissions.can_sign_off(request.user, run.study),
        "can_reopen": permissions.can_reopen_study(request.user, run.study),
        "audit_events": audit_trail(study=run.study),
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

    study = page_errors(lambda: study_for_view(user=request.user, slug=slug))
    params = request.POST if request.method == "POST" else request.GET
    try:
        filters = review_filters_from(params)
    except DomainError as exc:
        messages.error(request, exc.message)
        filters = ReviewFilters()
    if request.method == "POST":
        page_errors(lambda: study_for_change(user=request.user, slug=slug))
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
