"""`seed_demo`: an account per role, and a training run rated and ready for the release owner,
whose pages render and whose decision can be made; a second run creates nothing."""

from __future__ import annotations

import io
import re

import pytest
from django.apps import apps
from django.core.management import call_command
from django.test import Client

from annotations.demo_data import DEMO_STUDY, DEMO_USERS
from annotations.models import Judgment, Study
from scoring.demo.run import DEMO_RUN_ID, VOTES
from scoring.models import ScoringJob, TrainingRun
from scoring.release import decision_get

pytestmark = pytest.mark.django_db(transaction=False)


def seed(eager_celery) -> str:
    out = io.StringIO()
    with eager_celery(execute=True):  # pre-scoring runs in-process when the seed commits
        call_command("seed_demo", stdout=out)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


def logged_in(username: str) -> Client:
    password = next(p for u, _, p in DEMO_USERS if u == username)
    client = Client()
    assert client.login(username=username, password=password), username
    return client


def test_the_demo_run_is_ready_for_sign_off_its_pages_render_and_a_second_seed_adds_nothing(
    eager_celery,
) -> None:
    # (One test: seeding costs seconds, so each seed is used for as much as it can show.)
    out = seed(eager_celery)
    assert re.search(r"release_owner\s+releaseowner\s+password: \S+", out), out
    assert f"demo run {DEMO_RUN_ID}: ready for sign-off" in out
    assert f"/runs/{DEMO_RUN_ID}/signoff/" in out

    # The study the raters rate: open, every task type, nobody has judged it yet.
    study = Study.objects.get(slug=DEMO_STUDY["slug"])
    assert study.status == "open" and study.items.count() >= 30
    assert {i.task_type for i in study.items.all()} == {
        "generation",
        "classification",
        "structured",
    }
    assert study.memberships.count() == 3
    assert not Judgment.objects.filter(item__study=study).exists()

    run = TrainingRun.objects.select_related("study", "holdout_study").get(run_id=DEMO_RUN_ID)
    assert run.study.status == "ready"
    # (The printed verdict is read before this test's on-commit pre-scoring; a real process
    # pre-scores at commit, which tests/test_readme_commands.py sees.)
    assert decision_get(study=run.study)["verdict"] == "pass"
    # Every rater judged every pair.
    assert Judgment.objects.filter(item__study=run.study).count() == 3 * len(VOTES)
    assert run.holdout_study is not None and run.training_log["raw"]["best_global_step"] == 120
    jobs = ScoringJob.objects.filter(study__in=[run.study, run.holdout_study])
    assert jobs.count() == 2 and all(job.status == "done" for job in jobs)

    owner = logged_in("releaseowner")
    runs_page = owner.get("/runs/").content.decode()
    awaiting = runs_page.split("<h2>Other runs</h2>")[0]
    assert DEMO_RUN_ID in awaiting and f"/runs/{DEMO_RUN_ID}/signoff/" in awaiting

    signoff = owner.get(f"/runs/{DEMO_RUN_ID}/signoff/")
    assert signoff.status_code == 200
    page = signoff.content.decode()
    assert "Your decision" in page
    assert re.search(r'value="approve" type="submit">Approve', page), "approve is enabled"
    for criterion in ("human_votes", "agreement", "win_rate_ci_above_half", "no_overfitting"):
        assert re.search(rf"<td>{criterion}</td>\s*<td><strong class=\"pass\">", page), criterion
    assert re.search(r"<td>no_forgetting</td>\s*<td><strong class=\"pass\">", page)

    report = owner.get(f"/studies/{run.study.slug}/report/")
    assert report.status_code == 200
    assert DEMO_RUN_ID in report.content.decode()

    before = row_counts()
    again = seed(eager_celery)
    assert row_counts() == before
    assert f"demo run {DEMO_RUN_ID}: ready for sign-off" in again
    for username, _, _ in DEMO_USERS:  # the printed logins still work
        logged_in(username)

    # The decision the demo is there for: the release owner approves on the page.
    approved = owner.post(
        f"/runs/{DEMO_RUN_ID}/signoff/",
        {"decision": "approve", "comment": "Evidence holds on the demo."},
    )
    assert approved.status_code == 302
    assert "Your sign-off is recorded." in owner.get(approved.url).content.decode()
    run.study.refresh_from_db()
    assert run.study.status == "signed_off"
