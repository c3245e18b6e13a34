"""A database that cannot be reached is a temporary outage, not a server bug: API clients get
a JSON 503 with `Retry-After` (the rating page waits and sends the same request again, with the
same Idempotency-Key), pages a plain 503 page, instead of HTML 500 tracebacks.

`OperationalError` covers a refused or dropped connection and a pool that gave no connection in
time (psycopg_pool's PoolTimeout); `InterfaceError` a connection closed under us.
"""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
API_PREFIX = "/api/"


def unavailable_response(request: HttpRequest) -> HttpResponse:
    retry_after = str(settings.DB_UNAVAILABLE_RETRY_AFTER)
    if request.path.startswith(API_PREFIX):
        response: HttpResponse = JsonResponse(
            {
                "detail": "The database is unavailable for a moment; retry after "
                f"{retry_after} s. Nothing was saved.",
                "code": "database_unavailable",
            },
            status=503,
        )
    else:
        response = HttpResponse(
            "<!doctype html><title>Unavailable</title><h1>Temporarily unavailable</h1>"
            f"<p>The database cannot be reached. Please try again in {retry_after} seconds.</p>",
            status=503,
            content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = retry_after
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    """Turns a database outage raised by a view (DRF re-raises what it does not map) into 503."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_ERRORS):
            logger.warning("database unavailable for %s: %s", request.path, exception)
            return unavailable_response(request)
        return None


def server_error(request: HttpRequest, template_name: str = "500.html") -> HttpResponse:
    """handler500: an outage raised outside a view (the session or auth middleware) is a 503."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_ERRORS):
        return unavailable_response(request)
    return defaults.server_error(request, template_name)
