"""Planning before rating: items needed for the planned difference at the expected agreement,
shown where a researcher or pipeline looks, and the sequential design's maximum."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from annotations import services
from annotations.importers import ParsedItem, ParseResult
from annotations.models import Study, StudyStatus
from scoring.models import SequentialPlan, StudyPlanning
from scoring.stats.power import items_needed
from tests.factories import make_user
from tests.scoring.release_helpers import submission

pytestmark = pytest.mark.django_db


def import_items(study: Study, n: int) -> None:
    parsed = [
        ParsedItem(
            external_id=f"p{i}",
            prompt=f"Question {i}?",
            base=f"An answer to {i}.",
            tuned=f"An answer to {i}.",
            reference="",
            metadata={},
            line=i + 1,
        )
        for i in range(n)
    ]
    services.items_import(study=study, parsed=ParseResult(parsed, [], 0, n), source="p.jsonl")


@pytest.mark.django_db(transaction=True)
def test_create_study_prints_the_plan() -> None:
    # A real commit: the plan is made by scoring on `study_created` after the study commits.
    out = io.StringIO()
    call_command(
        "create_study",
        "planned",
        "--name",
        "Planned",
        "--task",
        "generation",
        "--overlap",
        "3",
        stdout=out,
    )
    expected = items_needed(votes_per_item=3, icc=0.5, tie_share=0.15)
    assert f"{expected.n_items:,} items" in out.getvalue()
    assert "No items imported yet" in out.getvalue()


def test_a_study_too_small_to_ever_pass_says_so(researcher, eager_celery) -> None:
    with eager_celery(execute=True):
        study = services.study_create(
            slug="tiny", name="Tiny", task_type="generation", overlap=1, created_by=researcher
        )
        import_items(study, 4)
    planning = StudyPlanning.objects.get(study=study)
    assert planning.data["rated_items"] == 4 and not planning.data["can_ever_pass"]
    assert "can never pass the gate" in planning.summary
    # The study page shows it.
    from django.test import Client

    page = Client()
    page.force_login(researcher)
    html = page.get(f"/studies/{study.slug}/").content.decode()
    assert "can never pass the gate" in html and 'id="planning"' in html


def test_the_sequential_design_stops_at_the_items_needed(researcher, eager_celery) -> None:
    needed = items_needed(votes_per_item=1, icc=0.5, tie_share=0.15).n_items
    with eager_celery(execute=True):
        study = services.study_create(
            slug="big", name="Big", task_type="generation", overlap=1, created_by=researcher
        )
        import_items(study, needed + 50)
        services.study_transition(
            study=study,
            target=StudyStatus.OPEN,
            actor=researcher,
            acknowledge_blinding_risk=True,
            reason="identical outputs",
        )
    plan = SequentialPlan.objects.get(study=study)
    assert plan.design["max_items"] == needed and plan.planning["items_needed"] == needed


def test_a_run_answer_carries_the_plan(researcher_api, eager_celery) -> None:
    make_user("rater", username="planner-rater")
    with eager_celery(execute=True):
        response = researcher_api.post(
            "/api/v1/runs/", submission(run_id="run-plan"), format="json"
        )
    assert response.status_code == 201, response.content
    planning = response.json()["planning"]
    assert planning["rated_items"] == 12 and planning["votes_per_item"] == 2
    assert (
        planning["items_needed"] == items_needed(votes_per_item=2, icc=0.5, tie_share=0.15).n_items
    )
    assert "items" in planning["summary"]
