"""API tokens: issue (a fresh one once the old one expired), revoke. Tokens live
`TOKEN_TTL_HOURS`; `annotations.authentication` refuses older ones in its one query."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotations.services.studies import audit_record

__all__ = ["token_expires_at", "token_issue", "token_revoke"]


def token_expires_at(created: datetime) -> datetime | None:
    """When a token created at `created` stops working (None: `TOKEN_TTL_HOURS` is 0, never)."""
    hours = settings.TOKEN_TTL_HOURS
    return created + timedelta(hours=hours) if hours > 0 else None


@transaction.atomic
def token_issue(*, user: AbstractBaseUser) -> Token:
    """The user's API token: the current one while it is valid, else a new one (the expired
    key is deleted, so it can never work again)."""
    token = Token.objects.select_for_update().filter(user=user).first()
    if token is not None:
        expires = token_expires_at(token.created)
        if expires is None or expires > timezone.now():
            return token
        token.delete()
    token = Token.objects.create(user=user)
    audit_record(entity="token", entity_id=user.get_username(), action="issued", actor=user)
    return token


@transaction.atomic
def token_revoke(*, user: AbstractBaseUser) -> bool:
    """Deletes the user's API token (signing out every client that uses it). Returns whether
    there was one."""
    deleted, _ = Token.objects.filter(user=user).delete()
    if deleted:
        audit_record(entity="token", entity_id=user.get_username(), action="revoked", actor=user)
    return bool(deleted)
