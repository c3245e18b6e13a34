"""The local `.env` file, read by the programs a person starts, never by an import.

`manage.py`, the WSGI application (gunicorn, runserver) and `celery -A evalplatform` read the
`.env` next to manage.py before the settings load; a variable already in the environment wins
over the file (so `DEBUG=0 SECRET_KEY=... manage.py check --deploy` checks what it says).
Importing the settings alone (pytest, `django.setup()` in a script) reads no file: a developer's
`.env` never changes the database or broker the tests run against.

`make install` writes a local-development `.env` (DEBUG=1, a freshly generated SECRET_KEY) when
there is none; it never overwrites one. The file is git-ignored and kept out of Docker images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dotenv import load_dotenv

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"


def load_env_file(path: Path = ENV_FILE) -> bool:
    """Sets each variable of `path` that the environment does not set already (set but empty
    counts as set). False when there is no such file or it sets nothing."""
    if not path.is_file():
        return False
    return load_dotenv(path, override=False)


def started_as_celery(argv: Sequence[str]) -> bool:
    """Whether this process is the `celery` program (`celery ...` or `python -m celery ...`):
    the worker and beat import this project through `-A evalplatform`, not through manage.py."""
    if not argv or not argv[0]:
        return False
    program = Path(argv[0])
    return program.name == "celery" or (
        program.name == "__main__.py" and program.parent.name == "celery"
    )
