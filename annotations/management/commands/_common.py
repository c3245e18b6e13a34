"""Helpers shared by the management commands: domain errors become a clear non-zero exit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar

from django.core.management.base import CommandError

from annotations.errors import DomainError

T = TypeVar("T")


@contextmanager
def domain_errors_as_command_errors(stderr) -> None:
    try:
        yield
    except DomainError as exc:
        for line in exc.errors if isinstance(exc.errors, list) else []:
            stderr.write(str(line))
        if isinstance(exc.errors, dict):
            for field, problems in exc.errors.items():
                stderr.write(f"{field}: {problems}")
        raise CommandError(exc.message) from exc


@contextmanager
def output_to(command, path) -> Iterator[TextIO]:
    """The file at `path` (closed afterwards), or the command's standard output when None."""
    if path is None:
        command.stdout.ending = ""
        yield command.stdout
        return
    with path.open("w", encoding="utf-8", newline="") as handle:
        yield handle


def _auc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def blinding_line(audit: dict[str, Any]) -> str:
    """One line on a blinding audit: the AUCs raw and as displayed, and the verdict."""
    verdict = (
        "AT RISK: raters could tell the sides apart; opening needs an acknowledgement"
        if audit["at_risk"]
        else "ok"
    )
    return (
        f"blinding audit: AUC raw {_auc(audit['auc'])} "
        f"({_auc(audit['auc_without_length'])} without length), as displayed "
        f"{_auc(audit['auc_displayed'])} ({_auc(audit['auc_displayed_without_length'])} "
        f"without length): {verdict}"
    )


def call(stderr, function: Callable[..., T], /, **kwargs) -> T:
    with domain_errors_as_command_errors(stderr):
        return function(**kwargs)
