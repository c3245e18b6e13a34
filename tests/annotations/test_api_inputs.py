"""No input gets a 500: each case that once did answers 400 / 404 / 409 / 413 and writes
nothing."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from annotations.models import AuditEvent, Item, Study
from tests.conftest import api_client_for
from tests.factories import jsonl_bytes, make_study, make_user, pair_records
from tests.scoring.release_helpers import submission

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "method", "url"),
    [
        ("rater", "get", "/api/v1/queue/next/?study=a%00b"),
        ("researcher", "get", "/api/v1/audit/?study=a%00b"),
        ("researcher", "get", "/api/v1/runs/run%00x/"),
        ("researcher", "get", "/api/v1/runs/run%00x/decision/"),
        ("researcher", "post", "/api/v1/studies/STUDY/items/a%00b/adjudication/"),
    ],
)
def test_a_nul_byte_in_the_url_is_a_400(role, method, url) -> None:
    study = make_study(items=1, overlap=1)
    client = api_client_for(make_user(role))
    response = getattr(client, method)(url.replace("STUDY", study.slug), format="json")
    assert response.status_code == 400, response.content
    assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("items=1&offset=-1", "offset"),
        ("items=1&limit=-5", "limit"),
        ("items=1&offset=100000000000000000000000", "offset"),
        ("items=1&limit=99999999999999999999", "limit"),
        ("items=1&offset=x", "offset"),
    ],
)
def test_bad_score_paging_is_a_400(researcher, researcher_api, query, field) -> None:
    study = make_study(items=2, overlap=1, owner=researcher)
    response = researcher_api.get(f"/api/v1/studies/{study.slug}/scores/?{query}")
    assert response.status_code == 400, response.content
    assert field in response.json()


@pytest.mark.parametrize(
    "body",
    [
        {"min_human_votes": 2**31},
        {"min_human_votes": 10**400},
        {"min_human_votes": 5, "min_human_vote": 7},
        {"max_forgetting_metric_drop": "NaN"},
        {"forgetting_metric_margins": {"corpus_bleu": -1}},
        {"forgetting_metric_margins": {"corpus_bleu": "NaN"}},
        {"forgetting_metric_margins": ["corpus_bleu"]},
    ],
)
def test_bad_policy_updates_are_400_and_change_nothing(body) -> None:
    study = make_study(items=2, overlap=1)
    admin_api = api_client_for(make_user("admin"))
    before = admin_api.get(f"/api/v1/studies/{study.slug}/policy/").json()
    response = admin_api.patch(f"/api/v1/studies/{study.slug}/policy/", body, format="json")
    assert response.status_code == 400, response.content
    assert admin_api.get(f"/api/v1/studies/{study.slug}/policy/").json() == before


def test_deleting_a_study_that_a_run_points_at_is_a_409(researcher_api) -> None:
    response = researcher_api.post("/api/v1/runs/", submission(), format="json")
    assert response.status_code == 201, response.content
    slug = response.json()["study"]
    deleted = researcher_api.delete(f"/api/v1/studies/{slug}/")
    assert deleted.status_code == 409, deleted.content
    assert Study.objects.filter(slug=slug).exists()


@override_settings(IMPORT_MAX_UPLOAD_BYTES=2_000)
def test_an_upload_over_the_import_limit_is_a_413(researcher, researcher_api) -> None:
    study = make_study(items=1, overlap=1, owner=researcher)
    data = jsonl_bytes(pair_records(50, prefix="big"))
    assert len(data) > 2_000
    response = researcher_api.post(
        f"/api/v1/studies/{study.slug}/import/",
        {"file": SimpleUploadedFile("big.jsonl", data)},
        format="multipart",
    )
    assert response.status_code == 413
    assert "IMPORT_MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert Item.objects.filter(study=study).count() == 1


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_a_json_body_over_the_request_limit_is_a_413(researcher_api) -> None:
    response = researcher_api.post("/api/v1/runs/", submission(items=200), format="json")
    assert response.status_code == 413
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]


@pytest.mark.parametrize("url", ["/api/v1/runs/", "/api/v1/studies/"])
def test_json_nested_100000_deep_is_a_400(researcher_api, url) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = researcher_api.post(url, body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]


def test_study_settings_that_cannot_be_stored_are_a_400(researcher, researcher_api) -> None:
    study = make_study(items=1, overlap=1, owner=researcher)
    deep: dict = {}
    node = deep
    for _ in range(60):
        node["a"] = {}
        node = node["a"]
    for settings_value in (deep, {"k\u0000": 1}, {"k": "\ud800"}, ["not", "an", "object"]):
        # json.dumps escapes the lone surrogate as \\ud800, as a client would send it.
        response = researcher_api.patch(
            f"/api/v1/studies/{study.slug}/",
            json.dumps({"settings": settings_value}),
            content_type="application/json",
        )
        assert response.status_code == 400, (settings_value, response.content)
        assert any(k.startswith("settings") for k in response.json()["errors"])
    assert not AuditEvent.objects.filter(action="updated", entity="study").exists()
