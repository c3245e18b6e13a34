"""Who may do what: every access rule of the platform, in one module.

Roles (`annotations.roles`) say what kind of work a user does; this module adds the study:

| who                                   | read a study | change it* | delete / archive | reopen |
|---------------------------------------|--------------|------------|------------------|--------|
| admin (or superuser)                  | yes          | yes        | yes              | yes    |
| researcher who owns it (`created_by`) | yes          | yes        | yes              | no     |
| researcher who collaborates on it     | yes          | yes        | no               | no     |
| any other researcher                  | if allowed** | no         | no               | no     |
| release owner                         | yes (to sign)| no         | no               | yes    |
| rater                                 | no (only the rating page of studies they rate)  |

** `settings.STUDIES_READABLE_BY_ALL_RESEARCHERS` (default yes).

*change: edit fields, import, assign, invite and remove raters, make crowd links, move its
state, pre-score, adjudicate, decide identity flags, manage collaborators (owner and admin
only). A training run follows its study.
An archived study is read-only for everyone. Signing off is the release owner's
(`scoring.release.signoff_record` checks it); editing a release policy is the admin's.

Two pages are open without signing in: following an invite link or a crowd link
(`annotations.views_raters`). The link's token is the credential; the services check it (an
invite once, against its stored hash, while it is pending; a crowd link while it is active) and
a crowd participant's account can rate that one study only, with no password.

API views and pages call `study_for_view` / `study_for_change` / `study_for_delete`, which
raise a domain error (404 when the user may not even read the study, 403 when they may read but
not change it, 409 when it is archived); pages turn those into 404 / 403 pages.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404
from rest_framework.permissions import BasePermission

from annotations import roles
from annotations.errors import (
    ConflictError,
    DomainError,
    DomainPermissionError,
    NotFoundError,
)
from annotations.models import Study, StudyCollaborator

User = AbstractBaseUser | AnonymousUser


# --- the rules ------------------------------------------------------------------------------


def is_study_owner(user: User, study: Study) -> bool:
    return user.is_authenticated and study.created_by_id == user.pk


def is_study_collaborator(user: User, study: Study) -> bool:
    if not user.is_authenticated:
        return False
    return StudyCollaborator.objects.filter(study=study, user_id=user.pk).exists()


def is_on_study(user: User, study: Study) -> bool:
    """Owner or collaborator (and still a researcher: a former researcher loses the study)."""
    if not roles.is_researcher(user):
        return False
    return is_study_owner(user, study) or is_study_collaborator(user, study)


def can_view_study(user: User, study: Study) -> bool:
    if roles.is_admin(user) or roles.is_release_owner(user):
        return True
    if not roles.is_researcher(user):
        return False
    return settings.STUDIES_READABLE_BY_ALL_RESEARCHERS or is_on_study(user, study)


def can_edit_study(user: User, study: Study) -> bool:
    """Edit, import into, assign raters to, move the state of, pre-score, adjudicate."""
    return roles.is_admin(user) or is_on_study(user, study)


def can_delete_study(user: User, study: Study) -> bool:
    """Delete (a study without evidence) or archive."""
    return roles.is_admin(user) or (roles.is_researcher(user) and is_study_owner(user, study))


can_archive_study = can_delete_study


def can_manage_collaborators(user: User, study: Study) -> bool:
    return can_delete_study(user, study)


def can_export_study(user: User, study: Study) -> bool:
    """Start and download a study's exports (the export API is the researcher's): release
    owners read the report page but get no export buttons."""
    return roles.is_researcher(user) and can_view_study(user, study)


def can_reopen_study(user: User, study: Study) -> bool:
    """Take a signed-off or rejected study back to reconciling: the release owner's call."""
    return roles.is_release_owner(user)


def can_sign_off(user: User, study: Study) -> bool:
    return roles.is_release_owner(user)


def can_read_audit_log(user: User) -> bool:
    """The whole log (every study, deleted ones too); researchers read their visible studies'."""
    return roles.is_admin(user) or roles.is_release_owner(user)


def studies_visible_to(user: User, queryset: QuerySet[Study]) -> QuerySet[Study]:
    """`queryset` narrowed to the studies `user` may read."""
    if roles.is_admin(user) or roles.is_release_owner(user):
        return queryset
    if not roles.is_researcher(user):
        return queryset.none()
    if settings.STUDIES_READABLE_BY_ALL_RESEARCHERS:
        return queryset
    return queryset.filter(Q(created_by_id=user.pk) | Q(collaborations__user_id=user.pk)).distinct()


# --- lookups that apply the rules (raise domain errors) ------------------------------------


def study_for_view(*, user: User, slug: str) -> Study:
    """The study, if `user` may read it. Raises NotFoundError (absent or not readable: a study
    one may not read is not confirmed to exist)."""
    study = Study.objects.filter(slug=slug).first()
    if study is None or not can_view_study(user, study):
        raise NotFoundError(f"no study {slug!r}")
    return study


def study_check_change(*, user: User, study: Study) -> Study:
    """Raises DomainPermissionError unless `user` may change `study`, ConflictError when it is
    archived (read-only for everyone)."""
    if not can_edit_study(user, study):
        raise DomainPermissionError(
            f"only the owner of study {study.slug!r}, its collaborators or an admin may change it"
        )
    if study.archived_at is not None:
        raise ConflictError(f"study {study.slug!r} is archived and read-only")
    return study


def study_for_change(*, user: User, slug: str) -> Study:
    return study_check_change(user=user, study=study_for_view(user=user, slug=slug))


def study_for_delete(*, user: User, slug: str) -> Study:
    """For deleting or archiving. Raises NotFoundError, DomainPermissionError."""
    study = study_for_view(user=user, slug=slug)
    if not can_delete_study(user, study):
        raise DomainPermissionError(
            f"only the owner of study {study.slug!r} or an admin may delete or archive it"
        )
    return study


def page_errors(call):
    """Runs a lookup for a page: NotFoundError becomes a 404 page, any other domain error a
    403 page with its message."""
    try:
        return call()
    except NotFoundError as exc:
        raise Http404(exc.message) from exc
    except DomainError as exc:
        raise PermissionDenied(exc.message) from exc


# --- DRF permission classes -----------------------------------------------------------------


class IsResearcher(BasePermission):
    message = "Researcher role required."

    def has_permission(self, request, view) -> bool:
        return roles.is_researcher(request.user)


class IsRater(BasePermission):
    message = "Rater role required."

    def has_permission(self, request, view) -> bool:
        return roles.is_rater(request.user)


class IsResearcherOrReleaseOwner(BasePermission):
    message = "Researcher or release owner role required."

    def has_permission(self, request, view) -> bool:
        return roles.is_researcher(request.user) or roles.is_release_owner(request.user)


class IsResearcherOrReleaseOwnerReading(BasePermission):
    """Researchers for everything; release owners for reads (GET) only."""

    message = "Researcher role required (release owners may read)."

    def has_permission(self, request, view) -> bool:
        if roles.is_researcher(request.user):
            return True
        return request.method in ("GET", "HEAD", "OPTIONS") and roles.is_release_owner(request.user)


# --- page decorators ------------------------------------------------------------------------


def role_required(check, message: str):
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


researcher_required = role_required(roles.is_researcher, "researcher role required")
rater_required = role_required(roles.is_rater, "rater role required")
release_access_required = role_required(
    lambda user: roles.is_researcher(user) or roles.is_release_owner(user),
    "researcher or release owner role required",
)
