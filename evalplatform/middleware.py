"""Request guards that run before any view: refuse what no view can answer sensibly.

* A NUL byte in the path or query string: PostgreSQL cannot compare text with U+0000, so a
  lookup such as `?study=a%00b` would fail inside the database driver (a 500). Answered 400.
* A body larger than the configured limit (`Content-Length`): 413 before anything reads it.
  Uploads to an import endpoint may be up to `IMPORT_MAX_UPLOAD_BYTES`; any other request up to
  `DATA_UPLOAD_MAX_MEMORY_SIZE`. Django itself only checks form fields, and DRF reads JSON
  bodies from the stream without any limit.

Both checks are a substring test and an integer comparison: nothing measurable on the rater
loop.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


def _refusal(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message, "code": code}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def body_limit_for(path: str) -> tuple[int | None, str]:
    """The largest body accepted on `path`, and the setting that says so."""
    if path.rstrip("/").endswith("/import"):
        return settings.IMPORT_MAX_UPLOAD_BYTES, "IMPORT_MAX_UPLOAD_BYTES"
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "DATA_UPLOAD_MAX_MEMORY_SIZE"


class RequestGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return _refusal(request, 400, "invalid", "NUL characters (%00) are not allowed in URLs")
        length = request.META.get("CONTENT_LENGTH") or ""
        if length:
            limit, setting = body_limit_for(request.path)
            try:
                size = int(length)
            except ValueError:
                return _refusal(request, 400, "invalid", "Content-Length is not a number")
            if limit is not None and size > limit:
                return _refusal(
                    request,
                    413,
                    "too_large",
                    f"the request body is {size:,} bytes, over the limit of {limit:,} bytes "
                    f"({setting})",
                )
        return self.get_response(request)
