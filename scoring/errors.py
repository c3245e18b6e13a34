"""Errors of the scoring app."""

from __future__ import annotations


class TransientScoringError(Exception):
    """A failure that may go away (judge endpoint rate limit, timeout): the task retries."""
