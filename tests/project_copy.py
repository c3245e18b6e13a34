"""A copy of the project as a fresh clone has it, for tests that run its commands the way a
person does (in their own processes, with their own `.env` and SQLite file).

The copy leaves out the tests (the application must not need them at run time), the local
`.env`, database and build leftovers; its `.venv` is the environment running the tests.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEFT_OUT = {
    ".git",
    ".venv",
    ".env",
    "tests",
    "bench",
    "exports",
    "staticfiles",
    "media",
    ".pytest_cache",
    ".ruff_cache",
    ".import_linter_cache",
    "build",
    ".whl",
    ".gl",
    "db.sqlite3",
    "db.sqlite3-journal",
}


def _ignore(directory: str, names: list[str]) -> set[str]:
    top = Path(directory).resolve() == ROOT
    return {
        name
        for name in names
        if (top and name in LEFT_OUT) or name == "__pycache__" or name.endswith(".egg-info")
    }


def project_copy(destination: Path) -> Path:
    """The project copied to `destination` (which must not exist), with `.venv` linked to the
    environment running the tests."""
    shutil.copytree(ROOT, destination, ignore=_ignore, symlinks=True)
    (destination / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return destination


def settings_variables() -> set[str]:
    """Every environment variable the settings read (and the settings module's own)."""
    source = (ROOT / "evalplatform" / "settings.py").read_text(encoding="utf-8")
    names = set(
        re.findall(r"""(?:env_\w+|os\.environ\.get)\(\s*["']([A-Z][A-Z0-9_]*)["']""", source)
    )
    return names | {"DJANGO_SETTINGS_MODULE"}


def clean_environment() -> dict[str, str]:
    """This process's environment without any setting: a command then gets its settings from
    the copy's `.env` and the defaults only (SQLite, in-process tasks), as on a fresh clone,
    whatever CI or a developer's shell exports."""
    drop = settings_variables()
    return {
        name: value
        for name, value in os.environ.items()
        if name not in drop and not name.startswith("JUDGE_ENDPOINT_")
    }
