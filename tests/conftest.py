from __future__ import annotations

import itertools
import os

import pytest
from django.core.cache import caches
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import make_study, make_user


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config, items) -> None:
    """Tests that need PostgreSQL or a live worker must run in CI, never skip there."""
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    on_postgres = database_url.startswith(("postgres://", "postgresql://"))
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            if running_in_ci():
                item.add_marker(pytest.mark.usefixtures("_fail_missing_service"))
            else:
                item.add_marker(
                    pytest.mark.skip(reason="needs DATABASE_URL=postgresql://... (runs in CI)")
                )
        if "worker" in item.keywords and not redis_url:
            if running_in_ci():
                item.add_marker(pytest.mark.usefixtures("_fail_missing_service"))
            else:
                item.add_marker(
                    pytest.mark.skip(reason="needs REDIS_URL and PostgreSQL (runs in CI)")
                )


# Tables whose PostgreSQL triggers refuse TRUNCATE (the audit log, sign-offs). Transactional
# tests end with a flush (TRUNCATE of every table): the test database's owner lifts the
# triggers for that one statement, as only an owner can.
APPEND_ONLY_TABLES = ("annotations_auditevent", "scoring_signoff", "scoring_signoffinvalidation")


@pytest.fixture(scope="session", autouse=True)
def _flush_past_append_only_triggers():
    try:
        from django.db.backends.postgresql.operations import DatabaseOperations
    except ImportError:  # no psycopg: no PostgreSQL tests either
        yield
        return
    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = original(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
        guarded = [table for table in APPEND_ONLY_TABLES if table in tables]
        if not statements or not guarded:
            return statements
        off = [f"ALTER TABLE {table} DISABLE TRIGGER USER;" for table in guarded]
        on = [f"ALTER TABLE {table} ENABLE TRIGGER USER;" for table in guarded]
        return off + list(statements) + on

    DatabaseOperations.sql_flush = sql_flush
    try:
        yield
    finally:
        DatabaseOperations.sql_flush = original


_cache_namespaces = itertools.count(1)


@pytest.fixture(autouse=True)
def _own_cache_namespace():
    """Each test sees an empty cache (debounce marks, login throttles) without flushing a
    shared Redis: the test's keys get their own prefix."""
    backend = caches["default"]
    previous = backend.key_prefix
    backend.key_prefix = f"test-{os.getpid()}-{next(_cache_namespaces)}"
    try:
        yield
    finally:
        backend.key_prefix = previous


@pytest.fixture
def _fail_missing_service() -> None:
    pytest.fail("this test needs PostgreSQL and Redis; CI must provide DATABASE_URL and REDIS_URL")


@pytest.fixture
def rater(db):
    return make_user("rater")


@pytest.fixture
def researcher(db):
    return make_user("researcher")


@pytest.fixture
def study(db, rater, researcher):
    return make_study(items=6, overlap=2, raters=[rater], owner=researcher)


def api_client_for(user) -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def rater_api(rater) -> APIClient:
    return api_client_for(rater)


@pytest.fixture
def researcher_api(researcher) -> APIClient:
    return api_client_for(researcher)


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def eager_celery(django_capture_on_commit_callbacks):
    """Runs Celery tasks in-process (as without REDIS_URL) and fires on_commit enqueues, even
    when CI points REDIS_URL at a real broker."""
    from evalplatform.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield django_capture_on_commit_callbacks
    finally:
        app.conf.task_always_eager = previous


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> str:
    """A tiny GPT-2 and tokenizer saved to disk, loaded by code through `from_pretrained`."""
    pytest.importorskip("torch")
    from tests.tiny_model import build_tiny_gpt2

    return str(build_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2_shared")))


@pytest.fixture(autouse=True)
def _evidence_checks_at_once(settings):
    """Evidence checks run as soon as the evidence changes (no debounce window), so a test sees
    the look recorded or the sign-off marked stale right after the change that caused it; the
    window itself is tested where it matters (`test_release_worker`,
    `test_evidence_checks_are_batched_off_the_request`)."""
    settings.EVIDENCE_CHECK_DEBOUNCE_SECONDS = 0
