"""A real Celery worker process for the worker tests (PostgreSQL and Redis, in CI): started in
its own session against the test database, stopped by signal to its whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def celery_worker(
    log_path: Path, *, env: dict[str, str], worker_args: tuple[str, ...] = ()
) -> subprocess.Popen:
    """`celery worker` on the cpu and gpu queues, concurrency 1, against the test database and
    `settings.REDIS_URL`; `env` adds settings, `worker_args` options (e.g. embedded beat)."""
    db = connection.settings_dict
    environment = dict(os.environ)
    environment.update(
        {
            "DATABASE_URL": f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "DEBUG": "1",
            **env,
        }
    )
    log = log_path.open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "evalplatform",
            "worker",
            *worker_args,
            "-Q",
            "cpu,gpu",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(timeout=30)


@pytest.fixture
def clean_broker():
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
