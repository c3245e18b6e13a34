"""The local `.env`: read by manage.py (and the WSGI app, and celery), a variable in the
environment winning over it; never read by importing the settings, as pytest does; written by
`make install` once and never overwritten."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from evalplatform.env_file import load_env_file, started_as_celery
from tests.project_copy import clean_environment, project_copy

FILE_KEY = "file-key-" + "f" * 50
ENVIRONMENT_KEY = "environment-key-" + "e" * 50


def test_the_file_sets_only_what_the_environment_does_not(tmp_path, monkeypatch) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# comment\nDEBUG=1\nSECRET_KEY=from-the-file\nREDIS_URL=redis://file:6379/0\n"
        "LOG_LEVEL='WARNING'\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    monkeypatch.setenv("REDIS_URL", "")  # set, though empty: it still wins
    for name in ("DEBUG", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    assert load_env_file(path) is True
    assert os.environ["SECRET_KEY"] == "from-the-environment"
    assert os.environ["REDIS_URL"] == ""
    assert os.environ["DEBUG"] == "1" and os.environ["LOG_LEVEL"] == "WARNING"


def test_no_file_is_no_change(tmp_path, monkeypatch) -> None:
    before = dict(os.environ)
    assert load_env_file(tmp_path / ".env") is False
    assert dict(os.environ) == before


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/srv/app/.venv/bin/celery", "-A", "evalplatform", "worker"], True),
        (["celery", "beat"], True),
        (["/usr/lib/python3.11/site-packages/celery/__main__.py", "worker"], True),
        (["manage.py", "runserver"], False),
        (["/srv/app/.venv/bin/pytest", "-q"], False),
        (["/srv/app/.venv/bin/gunicorn", "evalplatform.wsgi:application"], False),
        (["-c"], False),
        ([""], False),
        ([], False),
    ],
)
def test_celery_is_recognised_by_its_program(argv: list[str], expected: bool) -> None:
    assert started_as_celery(argv) is expected


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    project = project_copy(tmp_path_factory.mktemp("env") / "clone")
    (project / ".env").write_text(f"DEBUG=1\nSECRET_KEY={FILE_KEY}\n", encoding="utf-8")
    return project


def run_in(project: Path, args: list[str], **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        cwd=project,
        env={**clean_environment(), **variables},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


PRINT = "from django.conf import settings as s; print(s.DEBUG, s.SECRET_KEY)"


def test_manage_py_reads_the_file_and_the_environment_wins(clone: Path) -> None:
    from_file = run_in(clone, [sys.executable, "manage.py", "shell", "-c", PRINT])
    assert from_file.returncode == 0, from_file.stderr[-2000:]
    assert f"True {FILE_KEY}" in from_file.stdout
    # `make deploy-check`: DEBUG off and its own key, whatever the developer's .env says.
    deploy = run_in(
        clone,
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        DEBUG="0",
        SECRET_KEY=ENVIRONMENT_KEY,
        ALLOWED_HOSTS="eval.example.org",
    )
    assert deploy.returncode == 0, deploy.stderr[-2000:]
    assert "no issues" in deploy.stdout


def test_importing_the_settings_reads_no_file(clone: Path) -> None:
    """What pytest-django does: with no DEBUG or SECRET_KEY in the environment the settings
    refuse to load, although the .env next to them has both."""
    result = run_in(
        clone,
        [sys.executable, "-c", f"import django; django.setup(); {PRINT}"],
        DJANGO_SETTINGS_MODULE="evalplatform.settings",
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_the_wsgi_app_reads_the_file(clone: Path) -> None:
    result = run_in(
        clone,
        [sys.executable, "-c", f"import evalplatform.wsgi; {PRINT}"],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"True {FILE_KEY}" in result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_writes_a_development_env_once_and_never_overwrites_it(tmp_path) -> None:
    shutil.copy(Path(__file__).resolve().parents[2] / "Makefile", tmp_path / "Makefile")
    make = ["make", "--no-print-directory", ".env", f"PYTHON={sys.executable}"]
    first = run_in(tmp_path, make)
    assert first.returncode == 0, first.stderr
    written = (tmp_path / ".env").read_text(encoding="utf-8")
    lines = dict(line.split("=", 1) for line in written.splitlines() if "=" in line)
    assert lines["DEBUG"] == "1" and len(lines["SECRET_KEY"]) >= 50
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600  # a secret: owner only
    (tmp_path / ".env").write_text("DEBUG=0\nSECRET_KEY=mine\n", encoding="utf-8")
    again = run_in(tmp_path, make)
    assert again.returncode == 0
    assert (tmp_path / ".env").read_text(encoding="utf-8") == "DEBUG=0\nSECRET_KEY=mine\n"
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(tmp_path / "Makefile", other / "Makefile")
    assert run_in(other, make).returncode == 0
    fresh = dict(
        line.split("=", 1) for line in (other / ".env").read_text().splitlines() if "=" in line
    )
    assert fresh["SECRET_KEY"] != lines["SECRET_KEY"]  # generated, not a shared default
