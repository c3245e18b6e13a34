"""DRF permission classes for the roles (see `annotations.roles`)."""

from __future__ import annotations

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


class IsAdminRole(BasePermission):
    message = "Admin role required."

    def has_permission(self, request, view) -> bool:
        return roles.is_admin(request.user)
