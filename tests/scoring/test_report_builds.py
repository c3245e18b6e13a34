"""Cached report builds: GET .../report/ answers from the last build while the evidence key is
current, serves a stale build (marked) while a rebuild runs, and every kind of evidence change
makes the build stale."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotations import services
from annotations.models import Study
from scoring.models import ReportBuild
from scoring.release import policy_update
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_rebuild_dedupe():
    cache.clear()
    yield
    cache.clear()


def vote_some(study: Study, raters, per_rater: int) -> None:
    for rater in raters:
        for _ in range(per_rater):
            a = services.assignment_next(study=study, rater=rater)
            if a is None:
                break
            services.judgment_submit(assignment_id=a.pk, rater=rater, choice="1")


def get_report(api, study: Study, **params) -> tuple[dict, dict]:
    response = api.get(f"/api/v1/studies/{study.slug}/report/", params)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content), response


def test_unchanged_evidence_is_answered_from_the_build(researcher_api, eager_celery) -> None:
    raters = [make_user() for _ in range(3)]
    study = make_study(items=6, overlap=3, raters=raters)
    with eager_celery(execute=True):
        vote_some(study, raters, 6)
    first, response = get_report(researcher_api, study)
    assert first["cache"]["current"] and response["X-Report-Current"] == "true"
    assert first["judgments"] == 18 and len(first["sha256"]) == 64
    assert ReportBuild.objects.filter(study=study).count() == 1
    with CaptureQueriesContext(connection) as queries:
        again, _ = get_report(researcher_api, study)
    # Session, user, study and the build: nothing is recomputed.
    assert len(queries) <= 5, [q["sql"] for q in queries]
    assert again == first


def test_a_change_serves_the_stale_build_marked_and_rebuilds_in_the_background(
    researcher_api, eager_celery
) -> None:
    raters = [make_user() for _ in range(3)]
    study = make_study(items=6, overlap=3, raters=raters)
    with eager_celery(execute=True):
        vote_some(study, raters, 2)
    before, _ = get_report(researcher_api, study)
    with eager_celery(execute=True):
        vote_some(study, raters, 1)  # bumps the evidence version after commit
    # The rebuild is queued (not run) so that the stale answer can be seen.
    with mock.patch("scoring.tasks.rebuild_report.delay") as delay, eager_celery(execute=True):
        stale, response = get_report(researcher_api, study)
    assert not stale["cache"]["current"] and stale["cache"]["rebuilding"]
    assert response["X-Report-Rebuilding"] == "true"
    assert stale["judgments"] == before["judgments"]
    delay.assert_called_once()
    # The background task rebuilds; the next answer is current and counts the new votes.
    from scoring.tasks import rebuild_report

    rebuild_report(study.pk, {"exclude_flagged_raters": False})
    after, _ = get_report(researcher_api, study)
    assert after["cache"]["current"] and after["judgments"] == before["judgments"] + 3


def test_fresh_builds_now(researcher_api, eager_celery) -> None:
    raters = [make_user() for _ in range(2)]
    study = make_study(items=4, overlap=2, raters=raters)
    get_report(researcher_api, study)
    with eager_celery(execute=True):
        vote_some(study, raters, 1)
    fresh, _ = get_report(researcher_api, study, fresh="1")
    assert fresh["cache"]["current"] and fresh["judgments"] == 2


@pytest.mark.parametrize("change", ["adjudication", "policy", "status", "import"])
def test_every_kind_of_evidence_change_makes_the_build_stale(
    change, researcher, eager_celery
) -> None:
    from annotations.importers import ParsedItem, ParseResult
    from scoring.report_builds import evidence_key, report_build
    from scoring.reports import ReportOptions

    raters = [make_user() for _ in range(2)]
    study = make_study(items=4, overlap=2, raters=raters)
    with eager_celery(execute=True):
        vote_some(study, raters, 4)
    build = report_build(study_id=study.pk, options=ReportOptions())
    admin = make_user(role="admin")
    with eager_celery(execute=True):
        if change == "adjudication":
            item = study.items.first()
            services.adjudication_record(
                study=study,
                external_id=item.external_id,
                preference="tie",
                rationale="both fine",
                user=researcher,
            )
        elif change == "policy":
            policy_update(study=study, actor=admin, min_human_votes=7)
        elif change == "status":
            services.study_transition(study=study, target="closed", actor=researcher)
        else:
            parsed = ParsedItem(
                external_id="late-1",
                prompt="p",
                base="b",
                tuned="t",
                reference="",
                metadata={},
                line=1,
            )
            services.items_import(
                study=study, parsed=ParseResult([parsed], [], 0, 1), source="late.jsonl"
            )
    study.refresh_from_db()
    assert evidence_key(study) != build.evidence_key
