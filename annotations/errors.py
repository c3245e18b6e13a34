"""Domain errors raised by services and selectors; `evalplatform.api_errors` maps them to HTTP."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, errors: list[Any] | dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


class DomainValidationError(DomainError):
    code = "invalid"


class NotFoundError(DomainError):
    code = "not_found"


class ConflictError(DomainError):
    code = "conflict"


class DomainPermissionError(DomainError):
    code = "forbidden"


# Conflicts a rater meets, each with its own code so the rating page can say exactly what
# happened (the HTTP status stays 409 for all of them).


class AlreadyJudgedError(ConflictError):
    code = "already_judged"


class IdempotencyKeyReusedError(ConflictError):
    code = "key_reused"


class LeaseLostError(ConflictError):
    code = "lease_lost"


class StudyNotOpenError(ConflictError):
    code = "study_closed"


class AssignmentSkippedError(ConflictError):
    code = "skipped"


class WithdrawRefusedError(ConflictError):
    code = "withdraw_refused"
