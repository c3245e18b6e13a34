"""The roles, kept as Django groups: raters judge, researchers run studies, release owners
sign a tuned model off, admins do all of it and edit release policies. A superuser counts as
an admin."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

RATER = "rater"
RESEARCHER = "researcher"
RELEASE_OWNER = "release_owner"
ADMIN = "admin"
ROLES = (RATER, RESEARCHER, RELEASE_OWNER, ADMIN)


def group_names(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_role_names", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._role_names = cached  # noqa: SLF001 - per-request memo on the user object
    return cached


def role_names(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    """The user's roles; a superuser counts as an admin."""
    names = group_names(user)
    return names | {ADMIN} if user.is_authenticated and user.is_superuser else names


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    return ADMIN in role_names(user)


def is_researcher(user: AbstractBaseUser | AnonymousUser) -> bool:
    return is_admin(user) or RESEARCHER in group_names(user)


def is_release_owner(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Release owners approve or reject a tuned model; admins may too."""
    return is_admin(user) or RELEASE_OWNER in group_names(user)


def is_rater(user: AbstractBaseUser | AnonymousUser) -> bool:
    return RATER in group_names(user)


# What the admin role may do in the Django admin (it is staff, never a superuser): manage users
# and their roles, read every record, and use the admin actions that call services (closing
# or archiving a study, editing a study's fields or a release policy). Evidence (judgments,
# sign-offs, the audit log) stays read-only there whatever the permissions say.
ADMIN_VIEW_APPS = ("auth", "annotations", "scoring")
ADMIN_PERMISSIONS = (
    ("auth", "add_user"),
    ("auth", "change_user"),
    ("auth", "delete_user"),
    ("annotations", "change_study"),
    ("scoring", "change_releasepolicy"),
)
