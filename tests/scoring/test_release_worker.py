"""The release path end to end on PostgreSQL with a real Celery worker on Redis: submit a run,
raters vote, the evidence decides, two release owners sign off, a changed judgment turns the
approval stale. Plus the database-level immutability of sign-offs. Runs in CI."""

from __future__ import annotations

import json
import time

import pytest
from django.db import DatabaseError, connection, transaction

from annotations.models import Judgment, Study
from annotations.services import evidence_changed_notify
from scoring.models import ScoringJob, SequentialLook, SignOff, SignOffInvalidation
from tests.conftest import api_client_for
from tests.factories import make_user
from tests.scoring.release_helpers import make_ready, submission, vote_all
from tests.scoring.test_worker_redis import start_worker
from tests.scoring.worker_helpers import clean_broker, stop  # noqa: F401 - fixture

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_release_end_to_end_with_a_worker(clean_broker, tmp_path, settings) -> None:  # noqa: F811
    assert connection.vendor == "postgresql"
    settings.EVIDENCE_CHECK_DEBOUNCE_SECONDS = 1
    admin_user = make_user("admin")
    owners = [make_user("release_owner") for _ in range(2)]
    researcher = make_user("researcher")
    raters = [make_user("rater") for _ in range(3)]
    worker = start_worker(tmp_path / "worker.log")
    try:
        response = api_client_for(researcher).post(
            "/api/v1/runs/",
            json.dumps(submission(raters=[r.username for r in raters])),
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
        slug = response.json()["study"]
        wait_until(
            lambda: (
                ScoringJob.objects.filter(finished_at__isnull=True).count() == 0
                and ScoringJob.objects.count() == 2
            ),
            180,
            "pre-scoring by the worker",
        )
        admin_api = api_client_for(admin_user)
        assert (
            admin_api.patch(
                f"/api/v1/studies/{slug}/policy/",
                {
                    "min_human_votes": 20,
                    "min_judge_human_agreement": None,
                    "required_approvals": 2,
                    # No judge or scorer model in CI: the general-quality kind cannot be present.
                    "require_three_metric_kinds": False,
                },
                format="json",
            ).status_code
            == 200
        )
        assert vote_all({r: api_client_for(r) for r in raters}, slug) == 24
        # The worker's evidence check (debounced) records the sequential look that the
        # decision reads; reading the decision never records one itself.
        wait_until(
            lambda: SequentialLook.objects.filter(study__slug=slug).exists(),
            60,
            "the sequential look",
        )
        make_ready(slug, researcher)
        owner_apis = [api_client_for(o) for o in owners]
        decision = owner_apis[0].get("/api/v1/runs/run-001/decision/").json()
        assert decision["verdict"] == "pass", decision["criteria"]
        for api in owner_apis:
            assert (
                api.post(
                    "/api/v1/runs/run-001/signoff/",
                    {"decision": "approve", "comment": "ok"},
                    format="json",
                ).status_code
                == 201
            )
        assert Study.objects.get(slug=slug).status == "signed_off"
        # A judgment changes; the worker's evidence check marks both approvals stale.
        judgment = Judgment.objects.filter(item__study__slug=slug).first()
        time.sleep(1.5)  # let the debounce window of the votes above close
        with transaction.atomic():
            Judgment.objects.filter(pk=judgment.pk).update(
                preferred="base" if judgment.preferred == "tuned" else "tuned"
            )
            evidence_changed_notify(judgment.item.study_id)
        wait_until(
            lambda: SignOffInvalidation.objects.count() == 2, 120, "the approvals to go stale"
        )
        assert Study.objects.get(slug=slug).status == "reconciling"
    finally:
        stop(worker)


def test_database_refuses_to_change_a_signoff() -> None:
    from tests.factories import make_study

    owner = make_user("release_owner")
    study = make_study(items=1)
    signoff = SignOff.objects.create(
        study=study,
        decision="reject",
        comment="no",
        signed_by=owner,
        report_sha256="0" * 64,
        report_json="{}",
        policy={},
        criteria=[],
    )
    for sql in (
        "UPDATE scoring_signoff SET comment = 'edited' WHERE id = %s",
        "DELETE FROM scoring_signoff WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="immutable"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [signoff.pk])
    assert SignOff.objects.get(pk=signoff.pk).comment == "no"
