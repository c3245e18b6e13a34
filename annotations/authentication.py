"""DRF token authentication that reads the user's roles with the token, in one query.

DRF's `TokenAuthentication` reads the token and its user; the role check then reads the user's
groups: two queries before every API view runs. Here one query returns the user once per group
(a LEFT JOIN, so a user without groups still comes back) and the roles go into the per-request
memo that `annotations.roles` reads.

The same query returns the token's `created`, so refusing a token older than `TOKEN_TTL_HOURS`
costs no extra query on the rater loop.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token


def token_expired(created: datetime | str | None) -> bool:
    """Whether a token created at `created` is past `TOKEN_TTL_HOURS` (0: tokens never expire).
    A raw query returns the column as the driver gives it: a datetime on PostgreSQL, text on
    SQLite."""
    hours = settings.TOKEN_TTL_HOURS
    if hours <= 0 or created is None:
        return False
    if isinstance(created, str):
        created = parse_datetime(created)
        if created is None:
            return True
    if timezone.is_naive(created):
        created = timezone.make_aware(created, UTC)
    return created + timedelta(hours=hours) <= timezone.now()


class TokenWithRolesAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        User = get_user_model()  # noqa: N806 - a model class
        user_table = User._meta.db_table
        groups_table = User.groups.through._meta.db_table
        columns = ", ".join(f"u.{f.column}" for f in User._meta.concrete_fields)
        rows = list(
            User.objects.raw(
                f"SELECT {columns}, g.name AS role_name, t.created AS token_created "  # noqa: S608 - names from model metadata
                f"FROM {Token._meta.db_table} t "
                f"JOIN {user_table} u ON u.id = t.user_id "
                f"LEFT JOIN {groups_table} ug ON ug.user_id = u.id "
                f"LEFT JOIN {Group._meta.db_table} g ON g.id = ug.group_id "
                "WHERE t.key = %s",
                [key],
            )
        )
        if not rows:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = rows[0]
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if token_expired(user.token_created):
            raise exceptions.AuthenticationFailed(
                _("Token expired; request a new one with POST /api/v1/auth/token/.")
            )
        user._role_names = {row.role_name for row in rows if row.role_name}  # noqa: SLF001
        token = Token(key=key, user=user)
        token._state.adding = False  # noqa: SLF001 - the row exists
        return user, token
