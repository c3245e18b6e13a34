"""Maps domain errors raised by services to HTTP responses, in one place."""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from annotations.errors import (
    ConflictError,
    DomainError,
    DomainPermissionError,
    DomainValidationError,
    NotFoundError,
)

STATUS_BY_ERROR: dict[type[DomainError], int] = {
    DomainValidationError: status.HTTP_400_BAD_REQUEST,
    NotFoundError: status.HTTP_404_NOT_FOUND,
    ConflictError: status.HTTP_409_CONFLICT,
    DomainPermissionError: status.HTTP_403_FORBIDDEN,
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        code = next(
            (value for kind, value in STATUS_BY_ERROR.items() if isinstance(exc, kind)),
            status.HTTP_400_BAD_REQUEST,
        )
        body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
        if exc.errors:
            body["errors"] = exc.errors
        return Response(body, status=code)
    return drf_exception_handler(exc, context)
