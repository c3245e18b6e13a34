"""The effective settings for recovery, connection bounds and the sandbox, read from a fresh
process configured only by the environment (a misspelled setting would fail silently)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRINT_SETTINGS = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'db': s.DATABASES['default'], 'routes': s.CELERY_TASK_ROUTES, "
    "'beat': s.CELERY_BEAT_SCHEDULE, 'lease': s.CHUNK_LEASE_SECONDS, "
    "'unsandboxed': s.CODE_EXEC_ALLOW_UNSANDBOXED, 'middleware': s.MIDDLEWARE}, default=str))"
)


def load(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    base.update({"DJANGO_SETTINGS_MODULE": "evalplatform.settings", **env})
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("key", ["change-me-to-a-long-random-string", "change-me"])
def test_placeholder_secret_key_is_refused_in_production(key: str) -> None:
    result = load(DEBUG="0", SECRET_KEY=key)
    assert result.returncode != 0
    assert "SECRET_KEY is still the placeholder" in result.stderr


def test_postgres_gets_a_bounded_pool_from_the_environment() -> None:
    pytest.importorskip("psycopg_pool", reason="psycopg[pool] is a declared dependency")
    result = load(
        DEBUG="0",
        SECRET_KEY="x" * 60,
        DATABASE_URL="postgresql://u:p@db.example:5432/app",
        DB_POOL_MAX_SIZE="7",
        DB_CONN_MAX_AGE="60",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads(result.stdout)
    db = config["db"]
    assert db["CONN_MAX_AGE"] == 0 and db["CONN_HEALTH_CHECKS"] is True
    assert db["OPTIONS"]["pool"]["max_size"] == 7
    assert db["OPTIONS"]["pool"]["min_size"] <= 7
    assert config["routes"]["scoring.sandbox.*"] == {"queue": "sandbox"}
    assert config["routes"]["scoring.gpu.*"] == {"queue": "gpu"}
    assert config["beat"]["scoring-sweep-chunks"]["task"] == "scoring.sweep_chunks"
    assert config["lease"] == 60 and config["unsandboxed"] is False
    assert "evalplatform.db_errors.DatabaseUnavailableMiddleware" in config["middleware"]


def test_pool_can_be_turned_off() -> None:
    result = load(
        DEBUG="1",
        DATABASE_URL="postgresql://u:p@db.example:5432/app",
        DB_POOL_MAX_SIZE="0",
        DB_CONN_MAX_AGE="30",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    db = json.loads(result.stdout)["db"]
    assert "pool" not in db.get("OPTIONS", {}) and db["CONN_MAX_AGE"] == 30
