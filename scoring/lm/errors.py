"""Exceptions raised by the model-backed scorers in :mod:`scoring.lm`.

Callers (Celery tasks, management commands) branch on the class:

* :class:`ModelUnavailableError`: nothing to run on (no model configured, a path that does not
  exist, torch not installed, 401/403/404 from a judge endpoint). Skip the scorer with the
  message as the reason; never fail the study.
* :class:`TransientJudgeError`: HTTP 429, 5xx, timeouts or connection errors that survived the
  backend's own retries. Retry the task later.
* :class:`JudgeParseError`: the judge answered, but not in the required format.
* :class:`TemplateError`: a judge template (built-in or study-edited) is invalid.
* :class:`JudgeRequestError`: the endpoint rejected the request itself (other 4xx); retrying the
  same request will not help.
"""

from __future__ import annotations


class LMScoringError(Exception):
    """Base class for every error raised by :mod:`scoring.lm`."""


class ModelUnavailableError(LMScoringError):
    """No usable model: not configured, path missing, weights unloadable or torch absent."""


class TransientJudgeError(LMScoringError):
    """A judge request failed for a reason that may go away (429, 5xx, timeout, connection).

    Attributes:
        retry_after: seconds the server asked us to wait (``Retry-After``), when it said so;
            a task queue can use it as the retry countdown.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JudgeParseError(LMScoringError, ValueError):
    """The judge's answer does not contain exactly one well-formed verdict."""


class TemplateError(LMScoringError, ValueError):
    """A judge template is malformed (unknown/missing placeholders, bad candidate set)."""


class JudgeRequestError(LMScoringError):
    """The judge endpoint rejected the request (a 4xx other than 401/403/404/408/429)."""
