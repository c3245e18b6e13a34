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


RATER_REMOVED_MESSAGE = "you are no longer in this study; the judgments you saved are kept"


class RaterRemovedError(ConflictError):
    """The rater was removed from the study: no more pairs; their saved judgments stay."""

    code = "removed"

    def __init__(self, message: str = RATER_REMOVED_MESSAGE, **kwargs) -> None:
        super().__init__(message, **kwargs)


class ParticipantDoneError(ConflictError):
    """A crowd participant already judged as many pairs as their link asks for."""

    code = "participant_done"
