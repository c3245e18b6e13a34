from __future__ import annotations

import copy
import io
import json

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.test import RequestFactory

from annotations.models import AuditEvent, Judgment, Study
from scoring.models import SignOff, SignOffInvalidation, TrainingRun
from scoring.release import evidence_check, release_report
from tests.conftest import api_client_for
from tests.factories import make_user
from tests.scoring.release_helpers import HF_LOG, make_ready, submission, vote_all
from tests.scoring.test_scoring_jobs import FakeJudgeHandler, fake_judge_url  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def test_submission_is_idempotent_and_conflicts_are_400(researcher_api, eager_celery) -> None:
    with eager_celery(execute=True):
        first = researcher_api.post("/api/v1/runs/", submission(), format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["created"] and body["urls"]["decision"] == "/api/v1/runs/run-001/decision/"
    study = Study.objects.get(slug=body["study"])
    assert study.status == "open" and study.items.count() == 12
    assert Study.objects.get(slug=body["holdout_study"]).items.count() == 6
    again = researcher_api.post("/api/v1/runs/", submission(), format="json")
    assert again.status_code == 200 and not again.json()["created"]
    changed = submission()
    changed["items"][0]["tuned"] = "something else"
    conflict = researcher_api.post("/api/v1/runs/", changed, format="json")
    assert conflict.status_code == 400
    assert "run_id" in conflict.json()["errors"]
    assert TrainingRun.objects.count() == 1 and Study.objects.count() == 2


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p["items"][2].pop("tuned"), "items[2]"),
        (lambda p: p["items"][3].update(id="t001"), "items[3].id"),
        (
            lambda p: p["training_log"].__setitem__(3, {"eval_loss": float("nan"), "step": 100}),
            "training_log[3].eval_loss",
        ),
        (lambda p: p.update(raters=["nobody"]), "raters"),
        (lambda p: p.update(items=[]), "items"),
        (lambda p: p.update(task_type="poetry"), "task_type"),
    ],
)
def test_bad_submissions_get_field_errors_and_create_nothing(researcher_api, mutate, field) -> None:
    payload = copy.deepcopy(submission())
    mutate(payload)
    # Sent as text: training loggers write NaN, which strict JSON encoders refuse.
    response = researcher_api.post(
        "/api/v1/runs/", json.dumps(payload), content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert not Study.objects.exists() and not TrainingRun.objects.exists()


def test_study_states_only_move_along_allowed_transitions(researcher_api) -> None:
    response = researcher_api.post(
        "/api/v1/studies/", {"slug": "s", "name": "S", "task_type": "chat"}, format="json"
    )
    assert response.status_code == 201
    bad = researcher_api.post("/api/v1/studies/s/transition/", {"to": "ready"}, format="json")
    assert bad.status_code == 409
    assert (
        researcher_api.post("/api/v1/studies/s/transition/", {"to": "open"}, format="json").json()[
            "state"
        ]
        == "open"
    )
    sign = researcher_api.patch("/api/v1/studies/s/", {"status": "signed_off"}, format="json")
    assert sign.status_code == 409 and "sign-off" in sign.json()["detail"]
    events = list(
        AuditEvent.objects.filter(entity="study", entity_id="s").values_list(
            "action", "before", "after"
        )
    )
    assert events == [("created", "", "draft"), ("status", "draft", "open")]


@pytest.fixture
def release_setup(eager_celery, fake_judge_url):  # noqa: F811 - the fixture imported above
    admin_user = make_user("admin")
    owners = [make_user("release_owner") for _ in range(2)]
    researcher = make_user("researcher")
    raters = [make_user("rater") for _ in range(3)]
    payload = submission(
        raters=[r.username for r in raters],
        study_settings={
            "judge": {
                "backend": "openai",
                "model": "fake-judge",
                "base_url": fake_judge_url,
                "max_retries": 0,
            }
        },
    )
    with eager_celery(execute=True):
        response = api_client_for(researcher).post("/api/v1/runs/", payload, format="json")
    assert response.status_code == 201, response.content
    slug = response.json()["study"]
    admin_api = api_client_for(admin_user)
    policy = admin_api.patch(
        f"/api/v1/studies/{slug}/policy/",
        {"min_human_votes": 20, "min_judge_human_agreement": None, "required_approvals": 2},
        format="json",
    )
    assert policy.status_code == 200, policy.content
    return {
        "slug": slug,
        "owners": owners,
        "researcher": researcher,
        "raters": raters,
        "admin": admin_user,
    }


def test_full_release_flow_two_approvals_then_stale(release_setup, eager_celery) -> None:
    s = release_setup
    slug = s["slug"]
    with eager_celery(execute=True):
        votes = vote_all({r: api_client_for(r) for r in s["raters"]}, slug)
    assert votes == 24
    make_ready(slug, s["researcher"])
    owner_api = [api_client_for(o) for o in s["owners"]]
    decision = owner_api[0].get("/api/v1/runs/run-001/decision/").json()
    criteria = {c["name"]: c for c in decision["criteria"]}
    assert decision["verdict"] == "pass", criteria
    assert (
        criteria["three_metric_kinds"]["passed"]
        and "llm_judge" in criteria["three_metric_kinds"]["evidence"]
    )
    assert criteria["no_overfitting"]["passed"] and criteria["no_forgetting"]["passed"]
    first = owner_api[0].post(
        "/api/v1/runs/run-001/signoff/",
        {"decision": "approve", "comment": "evidence holds"},
        format="json",
    )
    assert first.status_code == 201, first.content
    assert first.json()["state"] == "ready"  # two distinct approvals required
    twice = owner_api[0].post(
        "/api/v1/runs/run-001/signoff/", {"decision": "approve", "comment": "again"}, format="json"
    )
    assert twice.status_code == 409
    second = owner_api[1].post(
        "/api/v1/runs/run-001/signoff/", {"decision": "approve", "comment": "agreed"}, format="json"
    )
    assert second.status_code == 201 and second.json()["state"] == "signed_off"
    signoffs = list(SignOff.objects.order_by("id"))
    assert signoffs[0].report_sha256 == signoffs[1].report_sha256 == decision["report_sha256"]
    record = owner_api[0].get(second.json()["record_url"])
    assert record.status_code == 200 and decision["report_sha256"].encode() in record.content
    # A judgment changes: the approval goes stale instead of silently changing.
    judgment = Judgment.objects.filter(item__study__slug=slug).first()
    Judgment.objects.filter(pk=judgment.pk).update(
        preferred="base" if judgment.preferred == "tuned" else "tuned"
    )
    # Reading the decision is a pure read: it shows the approvals as stale but records
    # nothing and leaves the study where it is; the evidence-change path records it.
    audit_before = AuditEvent.objects.count()
    read = owner_api[0].get("/api/v1/runs/run-001/decision/").json()
    assert all(row["stale"] for row in read["signoffs"]) and read["state"] == "signed_off"
    assert SignOffInvalidation.objects.count() == 0
    assert AuditEvent.objects.count() == audit_before
    assert Study.objects.get(slug=slug).status == "signed_off"
    evidence_check(study_id=judgment.item.study_id)
    assert SignOffInvalidation.objects.count() == 2
    after = owner_api[0].get("/api/v1/runs/run-001/decision/").json()
    assert after["state"] == "reconciling"
    assert all(row["stale"] for row in after["signoffs"])
    assert after["report_sha256"] != decision["report_sha256"]
    actions = list(AuditEvent.objects.filter(study__slug=slug).values_list("entity", "action"))
    assert ("signoff", "approve") in actions and ("signoff", "stale") in actions
    audit = api_client_for(s["researcher"]).get(f"/api/v1/audit/?study={slug}&format=csv")
    assert b"stale" in b"".join(audit.streaming_content)


def test_approval_refused_while_evidence_fails(release_setup) -> None:
    s = release_setup
    make_ready(s["slug"], s["researcher"])  # no human votes yet
    response = api_client_for(s["owners"][0]).post(
        "/api/v1/runs/run-001/signoff/",
        {"decision": "approve", "comment": "ship it"},
        format="json",
    )
    assert response.status_code == 409
    assert "human_votes" in response.json()["errors"]["criteria"]
    reject = api_client_for(s["owners"][0]).post(
        "/api/v1/runs/run-001/signoff/",
        {"decision": "reject", "comment": "not enough votes"},
        format="json",
    )
    assert reject.status_code == 201 and reject.json()["state"] == "rejected"


def test_only_release_owners_sign_and_only_admins_edit_policy(release_setup) -> None:
    s = release_setup
    make_ready(s["slug"], s["researcher"])
    researcher_api = api_client_for(s["researcher"])
    assert (
        researcher_api.post(
            "/api/v1/runs/run-001/signoff/", {"decision": "reject", "comment": "x"}, format="json"
        ).status_code
        == 403
    )
    assert (
        researcher_api.patch(
            f"/api/v1/studies/{s['slug']}/policy/", {"min_human_votes": 1}, format="json"
        ).status_code
        == 403
    )
    rater_api = api_client_for(s["raters"][0])
    assert rater_api.get("/api/v1/runs/run-001/decision/").status_code == 403


def test_signoff_records_are_immutable(release_setup) -> None:
    s = release_setup
    make_ready(s["slug"], s["researcher"])
    study = Study.objects.get(slug=s["slug"])
    call_command(
        "signoff",
        "run-001",
        "--reject",
        "--comment",
        "no",
        "--as",
        s["owners"][0].username,
        stdout=io.StringIO(),
    )
    signoff = SignOff.objects.get()
    signoff.comment = "edited"
    with pytest.raises(PermissionError):
        signoff.save()
    with pytest.raises(PermissionError):
        signoff.delete()
    with pytest.raises(PermissionError):
        SignOff.objects.filter(pk=signoff.pk).update(comment="edited")
    with pytest.raises(PermissionError):
        SignOff.objects.filter(pk=signoff.pk).delete()
    model_admin = admin.site._registry[SignOff]
    request = RequestFactory().get("/")
    request.user = s["admin"]
    assert not model_admin.has_change_permission(request, signoff)
    assert not model_admin.has_delete_permission(request, signoff)
    assert SignOff.objects.get().comment == "no"
    assert study.signoffs.count() == 1


def test_release_report_has_overfitting_curves(release_setup) -> None:
    report = release_report(study=Study.objects.get(slug=release_setup["slug"]))
    overfitting = report["release"]["overfitting"]
    assert overfitting["evaluated"] and not overfitting["flagged"]
    assert overfitting["best_validation_step"] == 200
    assert len(overfitting["curves"]["train"]) == 4


def test_overfitting_run_fails_the_gate(researcher_api, eager_celery) -> None:
    log = [dict(e) for e in HF_LOG[:-1]] + [
        {"loss": 1.1, "step": 250},
        {"eval_loss": 1.70, "step": 250},
        {"loss": 0.9, "step": 300},
        {"eval_loss": 1.85, "step": 300},
        {"loss": 0.7, "step": 350},
        {"eval_loss": 2.05, "step": 350},
    ]
    with eager_celery(execute=True):
        response = researcher_api.post(
            "/api/v1/runs/", submission(run_id="overfit", training_log=log), format="json"
        )
    report = release_report(study=Study.objects.get(slug=response.json()["study"]))
    criteria = {c["name"]: c for c in report["release"]["criteria"]}
    assert not criteria["no_overfitting"]["passed"]
    assert "validation loss rose" in criteria["no_overfitting"]["evidence"]


def test_submit_run_command(tmp_path, eager_celery) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(submission(run_id="cli-run")))
    out = io.StringIO()
    with eager_celery(execute=True):
        call_command("submit_run", str(path), stdout=out)
    assert "run cli-run created" in out.getvalue()
    path.write_text("{broken")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="invalid JSON"):
        call_command("submit_run", str(path), stdout=io.StringIO())


def test_signoff_page_shows_criteria_and_records_a_rejection(release_setup) -> None:
    from django.test import Client

    s = release_setup
    make_ready(s["slug"], s["researcher"])
    client = Client()
    client.force_login(s["owners"][0])
    page = client.get("/runs/run-001/signoff/")
    assert page.status_code == 200
    assert b"human_votes" in page.content and b"fail" in page.content
    response = client.post(
        "/runs/run-001/signoff/", {"decision": "reject", "comment": "too few votes"}
    )
    assert response.status_code == 302
    assert Study.objects.get(slug=s["slug"]).status == "rejected"
    rater = Client()
    rater.force_login(s["raters"][0])
    assert rater.get("/runs/run-001/signoff/").status_code == 403


def test_html_report_of_a_run_plots_the_training_curves(release_setup) -> None:
    from django.test import Client

    client = Client()
    client.force_login(release_setup["researcher"])
    page = client.get(f"/studies/{release_setup['slug']}/report/").content.decode()
    assert 'aria-label="training plot"' in page
    assert "Release evidence" in page and "three_metric_kinds" in page


def test_a_run_whose_outputs_unblind_raters_waits_in_draft(researcher_api, eager_celery) -> None:
    payload = submission(run_id="run-tells", items=30)
    for item in payload["items"]:
        item["tuned"] = "Sure! " + item["tuned"]
    with eager_celery(execute=True):
        response = researcher_api.post("/api/v1/runs/", payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "draft"
    assert (
        "Sure!" in body["human_study_waiting"]
        and "display_strip_prefixes" in (body["human_study_waiting"])
    )
    study = Study.objects.get(slug=body["study"])
    assert AuditEvent.objects.filter(study=study, entity="run", action="open_deferred").exists()
    # Pre-scoring went ahead; the raters wait for a researcher to fix or acknowledge the tells.
    assert study.scoring_jobs.exists()


def on_another_cpu(value, ulps: int = 3):
    """The same evidence as another CPU computes it: every float a few units in the last place
    off (another SIMD kernel, another summation order), and cancellation noise where it is 0."""
    import numpy as np

    if isinstance(value, float):
        if value == 0.0:
            return 3e-14
        shifted = value
        for _ in range(ulps):
            shifted = float(np.nextafter(shifted, np.inf))
        return shifted
    if isinstance(value, dict):
        return {k: on_another_cpu(v, ulps) for k, v in value.items()}
    if isinstance(value, list):
        return [on_another_cpu(v, ulps) for v in value]
    return value


def count_floats(value) -> int:
    if isinstance(value, float):
        return 1
    if isinstance(value, dict):
        return sum(count_floats(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_floats(v) for v in value)
    return 0


def test_evidence_hash_is_the_same_on_another_cpu_and_moves_with_real_changes(
    release_setup, eager_celery, monkeypatch
) -> None:
    from scoring.release import evidence_sha256
    from scoring.release import signoff as signoff_module

    s = release_setup
    with eager_celery(execute=True):
        vote_all({r: api_client_for(r) for r in s["raters"]}, s["slug"])
    make_ready(s["slug"], s["researcher"])
    study = Study.objects.get(slug=s["slug"])
    report = release_report(study=study)
    assert count_floats(report) > 50  # win rates, intervals, agreement, metric deltas, ...
    assert report != on_another_cpu(report)
    assert evidence_sha256(on_another_cpu(report)) == evidence_sha256(report)
    # Real changes still move it: a float by 1e-6, a count by one.
    moved = copy.deepcopy(report)
    moved["win_rate"]["tuned"] += 1e-6
    assert evidence_sha256(moved) != evidence_sha256(report)
    moved = copy.deepcopy(report)
    moved["judgments"] += 1
    assert evidence_sha256(moved) != evidence_sha256(report)

    # Approved where the web process runs, checked by a worker on another CPU: still current,
    # and a second approval computed there counts with the first.
    owners = [api_client_for(o) for o in s["owners"]]
    body = {"decision": "approve", "comment": "evidence holds"}
    assert owners[0].post("/api/v1/runs/run-001/signoff/", body, format="json").status_code == 201
    real_release_report = signoff_module.release_report
    monkeypatch.setattr(
        signoff_module, "release_report", lambda **kw: on_another_cpu(real_release_report(**kw))
    )
    evidence_check(study_id=study.pk)
    assert SignOffInvalidation.objects.count() == 0
    second = owners[1].post("/api/v1/runs/run-001/signoff/", body, format="json")
    assert second.status_code == 201 and second.json()["state"] == "signed_off"


def test_forgetting_reads_each_metric_against_its_own_margin(release_setup) -> None:
    from annotations.models import AuditEvent

    s = release_setup
    study = Study.objects.get(slug=s["slug"])
    forgetting = release_report(study=study)["release"]["forgetting"]
    margins = {m["name"]: m["margin"] for m in forgetting["metrics"]}
    # BLEU (0-100) gets the default 2-point margin, metrics on 0-1 the general 0.02.
    assert margins["sentence_bleu"] == 2.0 and margins["exact_match"] == 0.02, margins
    assert forgetting["metric_margins"] == {"corpus_bleu": 2.0, "sentence_bleu": 2.0}

    admin_api = api_client_for(s["admin"])
    url = f"/api/v1/studies/{s['slug']}/policy/"
    for bad in ({"sentence_bleu": -1}, {"sentence_bleu": "NaN"}, ["sentence_bleu"]):
        refused = admin_api.patch(url, {"forgetting_metric_margins": bad}, format="json")
        assert refused.status_code == 400, refused.content
    owner_api = api_client_for(s["owners"][0])
    assert (
        owner_api.patch(url, {"forgetting_metric_margins": {"x": 1}}, format="json").status_code
        == 403
    )
    changed = admin_api.patch(
        url, {"forgetting_metric_margins": {"sentence_bleu": 3, "rouge1": 0.05}}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["forgetting_metric_margins"] == {"sentence_bleu": 3.0, "rouge1": 0.05}
    forgetting = release_report(study=study)["release"]["forgetting"]
    margins = {m["name"]: m["margin"] for m in forgetting["metrics"]}
    assert margins["sentence_bleu"] == 3.0 and margins["rouge1"] == 0.05
    assert margins["exact_match"] == 0.02
    event = AuditEvent.objects.filter(entity="policy", action="updated").latest("id")
    assert event.details["before"]["forgetting_metric_margins"] == {
        "corpus_bleu": 2.0,
        "sentence_bleu": 2.0,
    }
    assert event.details["after"]["forgetting_metric_margins"] == {
        "sentence_bleu": 3.0,
        "rouge1": 0.05,
    }


def test_the_policy_service_refuses_a_bad_metric_margin(release_setup) -> None:
    from annotations.errors import DomainValidationError
    from scoring.release.policy import policy_get, policy_update

    study = Study.objects.get(slug=release_setup["slug"])
    for bad in ({"sentence_bleu": float("inf")}, {"": 1.0}, {"sentence_bleu": True}, [1]):
        with pytest.raises(DomainValidationError, match="forgetting_metric_margins"):
            policy_update(study=study, actor=release_setup["admin"], forgetting_metric_margins=bad)
    assert policy_get(study=study).forgetting_metric_margins == {
        "corpus_bleu": 2.0,
        "sentence_bleu": 2.0,
    }
