"""DRF token authentication that reads the user's roles with the token, in one query.

DRF's `TokenAuthentication` reads the token and its user; the role check then reads the user's
groups: two queries before every API view runs. Here one query returns the user once per group
(a LEFT JOIN, so a user without groups still comes back) and the roles go into the per-request
memo that `annotations.roles` reads.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token


class TokenWithRolesAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        User = get_user_model()  # noqa: N806 - a model class
        user_table = User._meta.db_table
        groups_table = User.groups.through._meta.db_table
        columns = ", ".join(f"u.{f.column}" for f in User._meta.concrete_fields)
        rows = list(
            User.objects.raw(
                f"SELECT {columns}, g.name AS role_name FROM {Token._meta.db_table} t "  # noqa: S608 - names from model metadata
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
        user._role_names = {row.role_name for row in rows if row.role_name}  # noqa: SLF001
        token = Token(key=key, user=user)
        token._state.adding = False  # noqa: SLF001 - the row exists
        return user, token
