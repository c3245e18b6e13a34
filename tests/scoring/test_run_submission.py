"""Run submissions: every bad shape is a 400 with a field-level message and creates nothing;
identical concurrent submissions create one run (one 201, the rest 200)."""

from __future__ import annotations

import copy
import json
import threading

import pytest
from django.db import connection

from annotations.models import Study
from scoring.models import TrainingRun
from tests.conftest import api_client_for
from tests.factories import make_user
from tests.scoring.release_helpers import HF_LOG, submission

pytestmark = pytest.mark.django_db


def deep(levels: int) -> dict:
    root: dict = {}
    node = root
    for _ in range(levels):
        node["x"] = {}
        node = node["x"]
    return root


def post_text(client, payload_text: str):
    return client.post("/api/v1/runs/", payload_text, content_type="application/json")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"training_log": 5}, "training_log"),
        ({"training_log": True}, "training_log"),
        ({"study_settings": ["a", "b"]}, "study_settings"),
        ({"study_settings": "judge"}, "study_settings"),
        ({"study_settings": 7}, "study_settings"),
        ({"run_id": "r" * 129}, "run_id"),
        ({"run_id": "team/run-1"}, "run_id"),
        ({"run_id": " leading-space"}, "run_id"),
        ({"run_id": 12}, "run_id"),
        ({"webhook_url": "https://hooks.example.org/" + "a" * 500}, "webhook_url"),
        ({"webhook_url": "hooks.example.org/x"}, "webhook_url"),
        ({"base_model": "b" * 201}, "base_model"),
        ({"name": "n" * 201}, "name"),
        ({"overlap": True}, "overlap"),
        ({"raters": "alice"}, "raters"),
        ({"study_settings": {"k\u0000": 1}}, "study_settings"),
        ({"study_settings": deep(60)}, "study_settings.x"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_submission_shapes_are_field_level_400s(researcher_api, change, field) -> None:
    payload = submission(**change)
    response = post_text(researcher_api, json.dumps(payload))
    assert response.status_code == 400, response.content[:300]
    errors = response.json()["errors"]
    assert any(key == field or key.startswith(field) for key in errors), errors
    assert not Study.objects.exists() and not TrainingRun.objects.exists()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p["items"][0].update({"pro\u0000mpt": "x"}), "items[0]"),
        (lambda p: p["items"][1].update(prompt="lone \ud800 surrogate"), "items[1]"),
        (lambda p: p["items"][2].update(metadata={"\udc00": 1}), "items[2]"),
        (lambda p: p["items"][3].update(priority=float("nan")), "items[3]"),
        (lambda p: p["items"][4].update(priority=float("inf")), "items[4]"),
        (lambda p: p["items"][5].update(metadata=deep(50)), "items[5]"),
    ],
)
def test_bad_items_are_field_level_400s(researcher_api, mutate, field) -> None:
    payload = copy.deepcopy(submission())
    mutate(payload)
    # json.dumps writes NaN and escapes lone surrogates, as a careless client would send them.
    response = post_text(researcher_api, json.dumps(payload))
    assert response.status_code == 400, response.content[:300]
    errors = response.json()["errors"]
    assert any(key.startswith(field) for key in errors), errors
    assert not Study.objects.exists() and not TrainingRun.objects.exists()


def test_nested_100000_deep_inside_a_submission_is_a_400(researcher_api) -> None:
    text = json.dumps(submission())[:-1] + ', "study_settings": ' + "[" * 100_000
    text += "]" * 100_000 + "}"
    response = post_text(researcher_api, text)
    assert response.status_code == 400
    assert not TrainingRun.objects.exists()


def test_a_run_id_that_is_not_a_url_segment_is_refused_not_lost(researcher_api) -> None:
    response = post_text(researcher_api, json.dumps(submission(run_id="a/b")))
    assert response.status_code == 400 and "run_id" in response.json()["errors"]
    ok = post_text(researcher_api, json.dumps(submission(run_id="team.run:7-b_2")))
    assert ok.status_code == 201, ok.content[:300]
    assert researcher_api.get("/api/v1/runs/team.run:7-b_2/").status_code == 200


def test_nan_outside_the_losses_is_kept_as_null(researcher_api) -> None:
    log = [dict(entry) for entry in HF_LOG]
    log[0]["grad_norm"] = float("nan")
    response = post_text(researcher_api, json.dumps(submission(training_log=log)))
    assert response.status_code == 201, response.content[:300]
    stored = TrainingRun.objects.get().training_log["raw"]
    assert stored[0]["grad_norm"] is None and stored[0]["loss"] == 2.10


def test_a_trainer_state_object_is_accepted_as_the_training_log(researcher_api) -> None:
    response = post_text(
        researcher_api, json.dumps(submission(training_log={"log_history": HF_LOG}))
    )
    assert response.status_code == 201, response.content[:300]


def test_a_run_whose_study_stays_a_draft_for_another_reason_says_why(
    researcher_api, monkeypatch
) -> None:
    """Opening refused for a reason other than blinding: no AUC to quote, the reason instead."""
    from annotations import services as annotation_services
    from annotations.errors import ConflictError

    def refuse(**kwargs):
        raise ConflictError("the study needs at least one rater before it opens")

    monkeypatch.setattr(annotation_services, "study_transition", refuse)
    response = post_text(researcher_api, json.dumps(submission()))
    assert response.status_code == 201, response.content[:300]
    study = TrainingRun.objects.get().study
    assert study.status == "draft"
    assert not (study.blinding_audit or {}).get("at_risk")
    waiting = response.json()["human_study_waiting"]
    assert waiting == "the study needs at least one rater before it opens"
    again = researcher_api.get("/api/v1/runs/run-001/")
    assert again.status_code == 200 and again.json()["human_study_waiting"] == waiting


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_identical_concurrent_submissions_give_one_201_and_the_rest_200() -> None:
    researcher = make_user("researcher")
    payload = submission(run_id="race-1")
    barrier = threading.Barrier(6)
    codes: list[int] = []

    def submit() -> None:
        client = api_client_for(researcher)
        barrier.wait()
        try:
            codes.append(client.post("/api/v1/runs/", payload, format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200] * 5 + [201], codes
    assert TrainingRun.objects.filter(run_id="race-1").count() == 1
    assert Study.objects.count() == 2  # the run's study and its hold-out study


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"run_id": "\xff"}', "not valid UTF-8"),
        (json.dumps(submission(run_id="x/y")).encode(), "run_id"),
    ],
)
def test_the_submit_run_command_reports_bad_files_without_a_traceback(
    tmp_path, content, message
) -> None:
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    path = tmp_path / "run.json"
    path.write_bytes(content)
    err = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("submit_run", str(path), stdout=io.StringIO(), stderr=err)
    assert message in str(caught.value) + err.getvalue()
    assert not TrainingRun.objects.exists()
