"""Pages for who rates a study: the researcher's raters page (members, invite links, crowd
links, removal) and the two pages a link opens (accepting an invite, joining through a crowd
link).

The link pages are the only pages open without signing in: the link's token is the
credential (an invite's is checked against its stored hash, `annotations.services.raters`).
Every page that shows or follows a token is `never_cache`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from annotations import permissions, roles, selectors, services
from annotations.errors import (
    DomainError,
    DomainPermissionError,
    DomainValidationError,
    NotFoundError,
    RaterRemovedError,
)
from annotations.forms import CrowdLinkForm, InviteAcceptForm, InviteForm, RatersForm
from annotations.models import Study
from annotations.permissions import (
    page_errors,
    researcher_required,
    study_for_change,
    study_for_view,
)
from annotations.services.raters import INVITE_CLOSED_MESSAGES

# --- the researcher's raters page -----------------------------------------------------------


def _crowd_url(request: HttpRequest, link) -> str:
    return request.build_absolute_uri(reverse("crowd-join", args=[link.token]))


def _raters_page(
    request: HttpRequest,
    study: Study,
    *,
    new_links: list[dict] | None = None,
    invite_form: InviteForm | None = None,
    status: int = 200,
) -> HttpResponse:
    can_edit = permissions.can_edit_study(request.user, study) and study.archived_at is None
    context = {
        "study": study,
        "can_edit": can_edit,
        "members": selectors.study_member_rows(study=study),
        "invites": selectors.study_invite_rows(study=study),
        # A crowd link admits anyone who has it: only those who may change the study see it.
        "crowd_links": [
            {"link": link, "url": _crowd_url(request, link)}
            for link in selectors.study_crowd_links(study=study)
        ]
        if can_edit
        else [],
        "raters_form": RatersForm(),
        "invite_form": invite_form or InviteForm(),
        "crowd_form": CrowdLinkForm(),
        "new_links": new_links or [],
    }
    return render(request, "annotations/study_raters.html", context, status=status)


@never_cache
@researcher_required
@require_http_methods(["GET", "POST"])
def study_raters(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the raters page. POST: assign existing raters by name (spaces or commas)."""
    if request.method == "GET":
        return _raters_page(
            request, page_errors(lambda: study_for_view(user=request.user, slug=slug))
        )
    study = page_errors(lambda: study_for_change(user=request.user, slug=slug))
    form = RatersForm(request.POST)
    if form.is_valid():
        try:
            services.raters_assign(
                study=study, usernames=form.cleaned_data["usernames"], actor=request.user
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Raters assigned.")
    else:
        messages.error(request, form.errors.as_text())
    # The study page and the raters page both carry this form; go back where it was sent.
    back = "study-raters" if request.POST.get("back") == "raters" else "study-detail"
    return redirect(back, slug=slug)


@never_cache
@researcher_required
@require_POST
def study_invites(request: HttpRequest, slug: str) -> HttpResponse:
    """Makes invite links (one, or one per name of a list; existing raters are assigned) and
    shows the new links this once: only their hashes are kept."""
    study = page_errors(lambda: study_for_change(user=request.user, slug=slug))
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _raters_page(request, study, invite_form=form, status=400)
    lines, days = form.cleaned_data["usernames"], form.cleaned_data["days"]
    try:
        if any(line.strip() for line in lines):
            outcomes = services.raters_invite(
                study=study, actor=request.user, lines=lines, days=days
            )
        else:
            new = services.invite_create(study=study, actor=request.user, days=days)
            outcomes = [services.RosterOutcome("", "invited", new.token, new.invite)]
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _raters_page(request, study, invite_form=form, status=400)
    new_links = [
        {
            "username": outcome.username,
            "outcome": outcome.outcome,
            "url": request.build_absolute_uri(reverse("invite-accept", args=[outcome.token]))
            if outcome.token
            else "",
            "expires_at": outcome.invite.expires_at if outcome.invite else None,
        }
        for outcome in outcomes
    ]
    return _raters_page(request, study, new_links=new_links)


def _page_action(request: HttpRequest, slug: str, action, done: str) -> HttpResponse:
    study = page_errors(lambda: study_for_change(user=request.user, slug=slug))
    try:
        action(study)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("study-raters", slug=slug)


@researcher_required
@require_POST
def study_invite_revoke(request: HttpRequest, slug: str, invite_id: int) -> HttpResponse:
    return _page_action(
        request,
        slug,
        lambda study: services.invite_revoke(study=study, invite_id=invite_id, actor=request.user),
        "Invite revoked: its link no longer works.",
    )


@researcher_required
@require_POST
def study_rater_remove(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    return _page_action(
        request,
        slug,
        lambda study: services.rater_remove(study=study, username=username, actor=request.user),
        f"{username} removed: their open pairs went back to the pool; their judgments stay.",
    )


@researcher_required
@require_POST
def study_crowd_links(request: HttpRequest, slug: str) -> HttpResponse:
    form = CrowdLinkForm(request.POST)
    if not form.is_valid():
        page_errors(lambda: study_for_change(user=request.user, slug=slug))
        messages.error(request, "Crowd link not created: " + form.errors.as_text())
        return redirect("study-raters", slug=slug)
    return _page_action(
        request,
        slug,
        lambda study: services.crowd_link_create(
            study=study, actor=request.user, **form.cleaned_data
        ),
        "Crowd link created.",
    )


@researcher_required
@require_POST
def study_crowd_link_deactivate(request: HttpRequest, slug: str, link_id: int) -> HttpResponse:
    return _page_action(
        request,
        slug,
        lambda study: services.crowd_link_deactivate(
            study=study, link_id=link_id, actor=request.user
        ),
        "Crowd link deactivated: nobody joins or resumes through it any more.",
    )


# --- the pages a link opens (no sign-in: the token is the credential) ----------------------


def notice_page(
    request: HttpRequest, *, title: str, message: str, status: int, heading: str = ""
) -> HttpResponse:
    """A plain outcome for someone following a link or a removed rater: what happened, in
    words, never a stack of errors."""
    return render(
        request,
        "annotations/rater_notice.html",
        {"title": title, "heading": heading or title, "message": message},
        status=status,
    )


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _form_errors(form, exc: DomainError) -> None:
    """A service's refusal on the sign-up form: under the field it names (username,
    password), else above the form."""
    if isinstance(exc.errors, dict) and set(exc.errors) & set(form.fields):
        for field, problems in exc.errors.items():
            form.add_error(field if field in form.fields else None, " ".join(map(str, problems)))
    else:
        form.add_error(None, _sentence(exc.message))


@never_cache
@require_http_methods(["GET", "POST"])
def invite_accept(request: HttpRequest, token: str) -> HttpResponse:
    """A new person picks a username and password and lands on the rating page; a rater who
    is signed in joins with one click."""
    try:
        invite = selectors.invite_by_token(token_hash=services.invite_token_hash(token))
    except NotFoundError as exc:
        return notice_page(request, title="Invite link", message=_sentence(exc.message), status=404)
    state = selectors.invite_state(invite, timezone.now())
    if state != "pending":
        return notice_page(
            request,
            title="Invite link",
            message=_sentence(INVITE_CLOSED_MESSAGES[state]),
            status=410,
        )
    user = request.user
    # A crowd participant's session is theirs alone: following an invite starts a new account.
    signed_in = user.is_authenticated and selectors.crowd_membership_of(user) is None
    form = InviteAcceptForm(initial={"username": invite.username})
    status = 200
    refusal = ""  # why a signed-in account could not join
    if request.method == "POST":
        if not signed_in:
            form = InviteAcceptForm(request.POST)
        accepted = None
        if signed_in or form.is_valid():
            try:
                if signed_in:
                    accepted = services.invite_accept(token=token, user=user)
                else:
                    accepted = services.invite_accept(
                        token=token,
                        username=invite.username or form.cleaned_data["username"],
                        password=form.cleaned_data["password"],
                    )
            except DomainError as exc:
                if signed_in:
                    refusal = _sentence(exc.message)
                else:
                    _form_errors(form, exc)
                status = 403 if isinstance(exc, DomainPermissionError) else 400
        else:
            status = 400
        if accepted is not None:
            if accepted.account_created:
                login(request, accepted.user)
            messages.success(request, "Welcome: you are a rater of this study now.")
            return redirect("rate", study=accepted.study.public_id)
    return render(
        request,
        "annotations/invite_accept.html",
        {
            "invite": invite,
            "title": invite.study.title_for_raters,
            "form": form,
            "signed_in": signed_in,
            "signed_in_rater": signed_in and roles.is_rater(user),
            "refusal": refusal,
        },
        status=status,
    )


@never_cache
@require_http_methods(["GET", "POST"])
def crowd_join(request: HttpRequest, token: str) -> HttpResponse:
    """A crowd participant arrives with their platform's id in the link's parameter; Start
    creates (or resumes) their account and opens the rating page."""
    title = "Study link"
    try:
        link = selectors.crowd_link_by_token(token=token)
    except NotFoundError as exc:
        return notice_page(request, title=title, message=_sentence(exc.message), status=404)
    if link.deactivated_at is not None:
        return notice_page(request, title=title, message="This study link is closed.", status=410)
    source = request.POST if request.method == "POST" else request.GET
    participant_id = source.get("participant_id" if request.method == "POST" else link.param_name)
    try:
        services.participant_id_check(participant_id or "")
    except DomainValidationError:
        return notice_page(
            request,
            title=title,
            message=f"This link needs your participant id in its {link.param_name} parameter "
            "(1 to 64 letters, digits, '_', '-' or '.'). Open it again from your study "
            "platform.",
            status=400,
        )
    current = selectors.crowd_membership_of(request.user)
    if request.user.is_authenticated and current is None:
        return notice_page(
            request,
            title=title,
            message=f"You are signed in as {request.user.get_username()}. Study links are for "
            "crowd participants: sign out first.",
            status=409,
        )
    same = (
        current is not None
        and current.crowd_link_id == link.pk
        and current.participant_id == participant_id
        and current.removed_at is None
    )
    if same:
        return redirect("rate", study=link.study.public_id)
    if request.method == "POST":
        try:
            joined = services.crowd_participant_join(token=token, participant_id=participant_id)
        except RaterRemovedError as exc:
            return notice_page(request, title=title, message=_sentence(exc.message), status=410)
        except DomainError as exc:
            return notice_page(request, title=title, message=_sentence(exc.message), status=409)
        login(request, joined.user)
        # Scoped to this participant and this browser session: the link resumes the account.
        request.session.set_expiry(0)
        return redirect("rate", study=joined.study.public_id)
    return render(
        request,
        "annotations/crowd_join.html",
        {
            "title": link.study.title_for_raters,
            "link": link,
            "participant_id": participant_id,
        },
    )
