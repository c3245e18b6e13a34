"""Writes: uploads waiting for a researcher to confirm the import preview.

The page parses an upload, shows the preview and keeps the upload's bytes here, server-side,
under a random token bound to the user and the study; the confirmation sends only the token,
and the import parses those bytes again (`upload_parse`), so what is written never comes from
a copy the browser sends back. The store is the Django cache (Redis in production, shared by
every web process), so an upload nobody confirms expires on its own; a token is good for one
import only."""

from __future__ import annotations

import secrets
import zlib
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache

from annotations.models import Study

__all__ = [
    "PENDING_IMPORT_SECONDS",
    "PendingImport",
    "pending_import_keep",
    "pending_import_take",
]

# Long enough to read a preview of every error and decide; short enough that a forgotten
# upload does not sit in memory.
PENDING_IMPORT_SECONDS = 30 * 60


@dataclass(frozen=True)
class PendingImport:
    """An upload as it came: the file (JSONL, or the base model's AlpacaEval file), the tuned
    model's file of an AlpacaEval pair, and how to parse them. Its fields are the arguments of
    `annotations.services.upload_parse`, which parses it: `upload_parse(**vars(pending))`."""

    file_format: str
    unmatched: str
    file_name: str
    data: bytes
    tuned_name: str = ""
    tuned_data: bytes | None = None


def _key(token: str) -> str:
    return f"pending-import:{token}"


def pending_import_keep(*, user: AbstractBaseUser, study: Study, upload: PendingImport) -> str:
    """Keeps `upload` for `user`'s import into `study`; returns the token that confirms it."""
    token = secrets.token_urlsafe(24)
    # Compressed: pair files are text and shrink several times, the cache holds less.
    cache.set(
        _key(token),
        {
            "user_id": user.pk,
            "study_id": study.pk,
            "file_format": upload.file_format,
            "unmatched": upload.unmatched,
            "file_name": upload.file_name,
            "data": zlib.compress(upload.data, 1),
            "tuned_name": upload.tuned_name,
            "tuned_data": (
                zlib.compress(upload.tuned_data, 1) if upload.tuned_data is not None else None
            ),
        },
        timeout=PENDING_IMPORT_SECONDS,
    )
    return token


def pending_import_take(
    *, token: str, user: AbstractBaseUser, study: Study
) -> PendingImport | None:
    """The upload kept under `token` by this user for this study, removed from the store so
    that a second confirmation (a double click, a replayed form) cannot import it again; None
    when it expired, was taken already, or belongs to another user or study."""
    key = _key(token)
    kept = cache.get(key)
    if kept is None or kept["user_id"] != user.pk or kept["study_id"] != study.pk:
        return None
    # Whoever deletes the key takes the upload: of two concurrent confirmations one wins.
    if not cache.delete(key):
        return None
    return PendingImport(
        file_format=kept["file_format"],
        unmatched=kept["unmatched"],
        file_name=kept["file_name"],
        data=zlib.decompress(kept["data"]),
        tuned_name=kept["tuned_name"],
        tuned_data=(
            zlib.decompress(kept["tuned_data"]) if kept["tuned_data"] is not None else None
        ),
    )
