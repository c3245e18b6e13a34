"""DRF permission classes for the roles (see `annotations.roles`)."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from annotations import roles


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


# --- page decorators ---


def researcher_required(view):
    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not roles.is_researcher(request.user):
            raise PermissionDenied("researcher role required")
        return view(request, *args, **kwargs)

    return wrapper


def rater_required(view):
    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not roles.is_rater(request.user):
            raise PermissionDenied("rater role required")
        return view(request, *args, **kwargs)

    return wrapper
