from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotations.models import Assignment, Item, Judgment, Output, System
from tests.conftest import api_client_for
from tests.factories import (
    BASE_MODEL,
    TUNED_MODEL,
    jsonl_bytes,
    make_study,
    make_user,
    pair_records,
)

pytestmark = pytest.mark.django_db


def test_every_endpoint_needs_authentication(study) -> None:
    client = APIClient()
    for method, url in [
        ("get", "/api/v1/studies/"),
        ("get", f"/api/v1/studies/{study.slug}/"),
        ("get", f"/api/v1/studies/{study.slug}/progress/"),
        ("get", f"/api/v1/studies/{study.slug}/judgments/"),
        ("get", f"/api/v1/queue/next/?study={study.slug}"),
        ("post", "/api/v1/assignments/1/judgment/"),
        ("get", "/api/v1/me/"),
        ("get", "/api/v1/me/studies/"),
        ("get", "/api/schema/"),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code in (401, 403), url


def test_token_auth_round_trip(rater, study) -> None:
    client = APIClient()
    response = client.post(
        "/api/v1/auth/token/", {"username": rater.username, "password": "pw-123456"}
    )
    assert response.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/v1/me/studies/").status_code == 200
    assert client.get("/api/v1/me/").json() == {"username": rater.username, "roles": ["rater"]}


def test_me_reports_each_users_roles(researcher) -> None:
    from annotations import services

    client = APIClient()
    client.force_authenticate(researcher)
    assert client.get("/api/v1/me/").json()["roles"] == ["researcher"]
    boss = services.user_create(username="boss", password="pw-123456", role="admin")
    boss.is_superuser = True
    boss.save()
    client.force_authenticate(boss)
    assert client.get("/api/v1/me/").json() == {"username": "boss", "roles": ["admin"]}


def test_rater_gets_403_on_researcher_endpoints(rater_api, study) -> None:
    for url in [
        "/api/v1/studies/",
        f"/api/v1/studies/{study.slug}/progress/",
        f"/api/v1/studies/{study.slug}/judgments/?format=csv",
    ]:
        assert rater_api.get(url).status_code == 403
    assert (
        rater_api.post(
            "/api/v1/studies/", {"slug": "x", "name": "x", "task_type": "chat"}
        ).status_code
        == 403
    )


def test_researcher_cannot_use_the_rater_queue(researcher_api, study) -> None:
    assert researcher_api.get(f"/api/v1/queue/next/?study={study.slug}").status_code == 403


def test_session_auth_keeps_csrf_on(rater, study) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.login(username=rater.username, password="pw-123456")
    pair = client.get(f"/api/v1/queue/next/?study={study.slug}").json()
    response = client.post(
        f"/api/v1/assignments/{pair['assignment']}/judgment/", {"choice": "1"}, format="json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_rating_loop_next_submit_until_204(rater_api, study) -> None:
    seen = 0
    while True:
        response = rater_api.get(f"/api/v1/queue/next/?study={study.slug}")
        if response.status_code == 204:
            break
        assert response.status_code == 200
        body = response.json()
        assert [r["slot"] for r in body["responses"]] == [1, 2]
        submit = rater_api.post(
            f"/api/v1/assignments/{body['assignment']}/judgment/",
            {"choice": "2", "rationale": "clearer", "time_ms": 4100},
            format="json",
        )
        assert submit.status_code == 201, submit.content
        seen += 1
    assert seen == 6
    assert Judgment.objects.filter(choice="right", time_ms=4100, rationale="clearer").count() == 6


def test_second_submission_is_409_and_counts_once(rater_api, study) -> None:
    pair = rater_api.get(f"/api/v1/queue/next/?study={study.slug}").json()
    url = f"/api/v1/assignments/{pair['assignment']}/judgment/"
    assert rater_api.post(url, {"choice": "1"}, format="json").status_code == 201
    second = rater_api.post(url, {"choice": "2"}, format="json")
    assert second.status_code == 409
    assert Judgment.objects.count() == 1
    assert Judgment.objects.get().choice == "left"


def test_bad_choice_is_400(rater_api, study) -> None:
    pair = rater_api.get(f"/api/v1/queue/next/?study={study.slug}").json()
    response = rater_api.post(
        f"/api/v1/assignments/{pair['assignment']}/judgment/", {"choice": "left!"}, format="json"
    )
    assert response.status_code == 400
    assert "choice" in response.json()


def test_other_raters_assignment_is_404(study) -> None:
    owner, intruder = make_user(), make_user()
    from annotations import services

    services.raters_assign(study=study, usernames=[owner.username, intruder.username])
    pair = api_client_for(owner).get(f"/api/v1/queue/next/?study={study.slug}").json()
    response = api_client_for(intruder).post(
        f"/api/v1/assignments/{pair['assignment']}/judgment/", {"choice": "1"}, format="json"
    )
    assert response.status_code == 404


# --- blinding ---------------------------------------------------------------------------------

FORBIDDEN_KEYS = {
    "system",
    "left_system",
    "right_system",
    "response_1_system",
    "response_2_system",
    "model",
    "model_name",
    "base",
    "tuned",
    "preferred",
    "output",
    "output_id",
    "outputs",
    "score",
    "scores",
    "votes",
    "judgments",
}


def collect_keys(value) -> set[str]:
    if isinstance(value, dict):
        keys = set(value)
        for v in value.values():
            keys |= collect_keys(v)
        return keys
    if isinstance(value, list):
        return set().union(*(collect_keys(v) for v in value)) if value else set()
    return set()


def test_rater_responses_leak_no_system_model_or_output_id() -> None:
    rater = make_user()
    study = make_study(items=20, overlap=1, raters=[rater])
    output_ids = [str(pk) for pk in Output.objects.values_list("id", flat=True)]
    client = api_client_for(rater)
    bodies = [client.get("/api/v1/me/studies/").content.decode()]
    html_client = APIClient()
    html_client.force_login(rater)
    bodies.append(html_client.get("/rate/").content.decode())
    page = html_client.get(f"/rate/{study.public_id}/")
    assert page.status_code == 200
    bodies.append(page.content.decode())
    while True:
        response = client.get(f"/api/v1/queue/next/?study={study.public_id}&render=html")
        if response.status_code == 204:
            break
        bodies.append(response.content.decode())
        assert not collect_keys(response.json()) & FORBIDDEN_KEYS
        submit = client.post(
            f"/api/v1/assignments/{response.json()['assignment']}/judgment/",
            {"choice": "1"},
            format="json",
        )
        bodies.append(submit.content.decode())
        assert not collect_keys(submit.json()) & FORBIDDEN_KEYS
    for body in bodies:
        lowered = body.lower()
        # Nor the study's internal name or slug (a run's slug is its run id, which names the
        # model): raters see the rater title and an opaque id.
        for secret in [BASE_MODEL, TUNED_MODEL, *output_ids, study.slug, study.name]:
            assert secret.lower() not in lowered
        for label in ['"base"', '"tuned"', "'base'", "'tuned'", "left_system"]:
            assert label not in lowered


def test_payload_shape_does_not_depend_on_the_side() -> None:
    rater = make_user()
    study = make_study(items=1, overlap=1, raters=[rater])
    client = api_client_for(rater)
    first = client.get(f"/api/v1/queue/next/?study={study.slug}").json()
    assignment = Assignment.objects.get(pk=first["assignment"])
    texts = {o.system: o.text for o in Output.objects.filter(item=assignment.item)}
    assert first["responses"][0]["text"] == texts[assignment.left_system]
    Assignment.objects.filter(pk=assignment.pk).update(
        left_system=System.TUNED if assignment.left_system == System.BASE else System.BASE
    )
    second = client.get(f"/api/v1/queue/next/?study={study.slug}").json()
    assert list(first) == list(second)
    assert [list(r) for r in first["responses"]] == [list(r) for r in second["responses"]]
    assert first["responses"][0]["text"] == second["responses"][1]["text"]


def test_rater_page_is_a_shell_that_carries_no_pair() -> None:
    rater = make_user()
    study = make_study(items=1, overlap=1, raters=[rater])
    client = APIClient()
    client.force_login(rater)
    page = client.get(f"/rate/{study.public_id}/").content.decode()
    # The page is a shell: pairs arrive only through the blinded API, never in the HTML.
    assert "Answer 0" not in page and "answer 0" not in page
    assert 'id="slot-1"' in page and 'id="slot-2"' in page


# --- researcher endpoints ---------------------------------------------------------------------


def test_researcher_creates_study_imports_assigns_and_exports(researcher_api) -> None:
    rater = make_user()
    response = researcher_api.post(
        "/api/v1/studies/",
        {
            "slug": "api-study",
            "name": "API study",
            "task_type": "generation",
            "overlap": 1,
            "status": "open",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    upload = SimpleUploadedFile("pairs.jsonl", jsonl_bytes(pair_records(3)))
    response = researcher_api.post(
        "/api/v1/studies/api-study/import/", {"file": upload, "format": "jsonl"}, format="multipart"
    )
    assert response.status_code == 201, response.content
    assert response.json()["items"] == 3 and response.json()["skipped"] == {}
    response = researcher_api.post(
        "/api/v1/studies/api-study/raters/", {"usernames": [rater.username]}, format="json"
    )
    assert response.status_code == 200
    rater_client = api_client_for(rater)
    for _ in range(3):
        pair = rater_client.get("/api/v1/queue/next/?study=api-study").json()
        rater_client.post(
            f"/api/v1/assignments/{pair['assignment']}/judgment/",
            {"choice": "tie", "time_ms": 1234},
            format="json",
        )
    progress = researcher_api.get("/api/v1/studies/api-study/progress/").json()
    assert progress["judgments"] == 3 and progress["items_complete"] == 3
    assert progress["raters"][0]["judged"] == 3
    export = researcher_api.get("/api/v1/studies/api-study/judgments/?format=csv")
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert len(rows) == 3
    assert {
        "item_id",
        "rater",
        "preferred",
        "choice",
        "response_1_system",
        "response_2_system",
        "time_ms",
        "created_at",
    } <= set(rows[0])
    assert not {"left_system", "right_system"} & set(rows[0])
    assert {r["choice"] for r in rows} == {"tie"}
    assert {r["preferred"] for r in rows} == {"tie"}
    assert rows[0]["item_id"].startswith("item-")
    jsonl = researcher_api.get("/api/v1/studies/api-study/judgments/?format=jsonl")
    lines = b"".join(jsonl.streaming_content).decode().splitlines()
    assert json.loads(lines[0])["time_ms"] == 1234


def test_bad_upload_is_atomic_with_line_errors(researcher, researcher_api) -> None:
    make_study(slug="atomic", items=1, owner=researcher)
    before = Item.objects.count()
    records = pair_records(5)
    data = (
        jsonl_bytes(records[:3]) + b'{"id": "broken", "prompt": "p"}\n' + jsonl_bytes(records[3:])
    )
    upload = SimpleUploadedFile("bad.jsonl", data)
    response = researcher_api.post(
        "/api/v1/studies/atomic/import/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 400
    body = response.json()
    assert "bad.jsonl:4: missing field 'base'; missing field 'tuned'" in body["errors"]
    assert Item.objects.count() == before


def test_duplicate_ids_against_existing_items_fail_the_whole_import(
    researcher, researcher_api
) -> None:
    make_study(slug="dups", items=2, owner=researcher)
    upload = SimpleUploadedFile("more.jsonl", jsonl_bytes(pair_records(4)))
    response = researcher_api.post(
        "/api/v1/studies/dups/import/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 400
    assert (
        "more.jsonl:1: id 'item-00000' already exists in study 'dups'" in response.json()["errors"]
    )
    assert Item.objects.filter(study__slug="dups").count() == 2


def test_openapi_schema_and_docs(researcher) -> None:
    client = APIClient()
    client.force_login(researcher)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert (
        "/api/v1/queue/next/" in paths and "/api/v1/assignments/{assignment_id}/judgment/" in paths
    )
    assert client.get("/api/docs/").status_code == 200
