"""Blinding on a study: what raters get is normalised identically on both sides, the audit is
stored and served, and opening a study whose displayed outputs give the sides away needs an
acknowledgement with a reason (every way to open), which the audit log keeps."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

from annotations import services
from annotations.blinding import display_text
from annotations.errors import ConflictError
from annotations.importers import parse_jsonl
from annotations.models import Assignment, AuditEvent, Output, Study, System
from tests.annotations.blinding_data import sure_pairs
from tests.conftest import api_client_for
from tests.factories import jsonl_bytes, make_user

pytestmark = pytest.mark.django_db

ITEMS = 120


def sure_study(slug: str, *, owner, prefixes: list[str] | None = None, raters=()) -> Study:
    """A draft study whose tuned outputs all start with " Sure! " and end with a newline."""
    study = services.study_create(
        slug=slug,
        name="Sure study",
        task_type="generation",
        overlap=1,
        max_overlap=1,
        display_strip_prefixes=prefixes or [],
        created_by=owner,
    )
    records = [
        {"id": f"q{i:03d}", "prompt": f"Question {i}?", "base": base, "tuned": tuned}
        for i, (base, tuned) in enumerate(sure_pairs(ITEMS))
    ]
    parsed = parse_jsonl(jsonl_bytes(records), file="sure.jsonl")
    summary = services.items_import(study=study, parsed=parsed, source="sure.jsonl")
    assert summary.items == ITEMS
    if raters:
        services.raters_assign(study=study, usernames=[r.username for r in raters])
    study.refresh_from_db()
    return study


def shape(text: str) -> tuple[bool, bool, bool, bool]:
    return (text[:1].isspace(), text[-1:].isspace(), text.startswith("Sure!"), "\r" in text)


def test_raters_see_both_sides_normalised_the_same_way(researcher, researcher_api) -> None:
    rater = make_user()
    study = sure_study("sure-fixed", owner=researcher, prefixes=["Sure!"], raters=[rater])
    audit = study.blinding_audit
    assert audit["auc"] >= 0.99 and audit["auc_without_length"] >= 0.99
    raw_tells = [t["feature"] for t in audit["tells"]]
    assert "leading_whitespace" in raw_tells and "first_word:Sure!" in raw_tells
    assert abs(audit["auc_displayed"] - 0.5) < 0.1
    assert abs(audit["auc_displayed_without_length"] - 0.5) < 0.1
    assert not audit["at_risk"]
    # Nothing to acknowledge: the study opens as is.
    opened = researcher_api.patch(f"/api/v1/studies/{study.slug}/", {"status": "open"})
    assert opened.status_code == 200, opened.content

    client = api_client_for(rater)
    raw = {(o.item.prompt, o.system): o.text for o in Output.objects.select_related("item").all()}
    shapes = {1: set(), 2: set()}
    tuned_slots = set()
    for _ in range(ITEMS):
        response = client.get(f"/api/v1/queue/next/?study={study.slug}")
        assert response.status_code == 200, response.content
        body = response.json()
        assert b"Sure!" not in response.content
        assert set(body) == {
            "assignment",
            "study",
            "title",
            "instructions",
            "prompt",
            "prompt_html",
            "responses",
            "leased_until",
        }
        assignment = Assignment.objects.get(pk=body["assignment"])
        sides = {1: assignment.left_system, 2: assignment.right_system}
        for slot in body["responses"]:
            text = slot["text"]
            shapes[slot["slot"]].add(shape(text))
            original = raw[(body["prompt"], sides[slot["slot"]])]
            assert text == display_text(original, strip_prefixes=["Sure!"])
            if sides[slot["slot"]] == System.TUNED:
                tuned_slots.add(slot["slot"])
        posted = client.post(
            f"/api/v1/assignments/{body['assignment']}/judgment/", {"choice": "tie"}, format="json"
        )
        assert posted.status_code == 201
    assert client.get(f"/api/v1/queue/next/?study={study.slug}").status_code == 204
    # The tuned side was shown in both slots, and no slot's text has a shape of its own.
    assert tuned_slots == {1, 2}
    assert shapes[1] == shapes[2] == {(False, False, False, False)}
    # The stored outputs keep what the model wrote.
    tuned_raw = Output.objects.filter(system=System.TUNED).values_list("text", flat=True)
    assert all(t.startswith(" Sure! ") and t.endswith("\n") for t in tuned_raw)
    # The rating page carries no output text (pairs arrive through the API above).
    page = Client()
    page.force_login(rater)
    html = page.get(f"/rate/{study.slug}/").content.decode()
    assert "Sure!" not in html and raw[("Question 0?", System.BASE)][:20] not in html


def test_without_the_prefix_strip_the_opener_shows_and_the_audit_says_so(
    researcher,
) -> None:
    rater = make_user()
    study = sure_study("sure-raw", owner=researcher, raters=[rater])
    assert study.blinding_audit["at_risk"]
    displayed = [t["feature"] for t in study.blinding_audit["tells_displayed"]]
    assert displayed[0] == "first_word:Sure!" and "leading_whitespace" not in displayed
    services.study_transition(
        study=study, target="open", acknowledge_blinding_risk=True, reason="test of the tell"
    )
    body = api_client_for(rater).get(f"/api/v1/queue/next/?study={study.slug}").json()
    texts = [r["text"] for r in body["responses"]]
    # Whitespace is always normalised; the opener stays because the study did not list it.
    assert not any(t[:1].isspace() or t[-1:].isspace() for t in texts)
    assert sum(t.startswith("Sure! ") for t in texts) == 1


def test_opening_at_risk_is_refused_then_accepted_with_a_reason(researcher, researcher_api) -> None:
    study = sure_study("sure-open", owner=researcher)
    refused = researcher_api.patch(f"/api/v1/studies/{study.slug}/", {"status": "open"})
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "first_word:Sure!" in detail and "display_strip_prefixes" in detail
    assert "'Sure!'" in detail and "acknowledge_blinding_risk" in detail
    assert refused.json()["errors"]["blinding"]["tells"][0]["feature"] == "first_word:Sure!"
    assert Study.objects.get(pk=study.pk).status == "draft"

    no_reason = researcher_api.patch(
        f"/api/v1/studies/{study.slug}/",
        {"status": "open", "acknowledge_blinding_risk": True},
        format="json",
    )
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["detail"]
    assert Study.objects.get(pk=study.pk).status == "draft"

    accepted = researcher_api.patch(
        f"/api/v1/studies/{study.slug}/",
        {"status": "open", "acknowledge_blinding_risk": True, "reason": "pilot, tells known"},
        format="json",
    )
    assert accepted.status_code == 200, accepted.content
    assert Study.objects.get(pk=study.pk).status == "open"
    event = AuditEvent.objects.get(study=study, action="blinding_risk_acknowledged")
    assert event.actor == researcher
    assert event.details["reason"] == "pilot, tells known"
    assert event.details["auc_displayed_without_length"] > 0.75
    assert event.details["tells"][0]["feature"] == "first_word:Sure!"
    status_event = AuditEvent.objects.get(study=study, action="status")
    assert (status_event.before, status_event.after) == ("draft", "open")
    assert status_event.details == {"reason": "pilot, tells known"}


def test_listing_the_opener_fixes_it_and_is_audited(researcher, researcher_api) -> None:
    study = sure_study("sure-fix", owner=researcher)
    response = researcher_api.patch(
        f"/api/v1/studies/{study.slug}/", {"display_strip_prefixes": ["Sure!"]}, format="json"
    )
    assert response.status_code == 200 and response.json()["display_strip_prefixes"] == ["Sure!"]
    study.refresh_from_db()
    assert not study.blinding_audit["at_risk"]
    event = AuditEvent.objects.get(study=study, action="display_prefixes")
    assert event.details == {"before": [], "after": ["Sure!"]}
    opened = researcher_api.patch(f"/api/v1/studies/{study.slug}/", {"status": "open"})
    assert opened.status_code == 200
    assert not AuditEvent.objects.filter(action="blinding_risk_acknowledged").exists()
    bad = researcher_api.patch(
        f"/api/v1/studies/{study.slug}/", {"display_strip_prefixes": [" "]}, format="json"
    )
    assert bad.status_code == 400


def test_every_way_to_open_is_guarded(researcher) -> None:
    study = sure_study("sure-ways", owner=researcher)
    with pytest.raises(ConflictError, match="first_word:Sure!"):
        services.study_transition(study=study, target="open")
    with pytest.raises(ConflictError):
        services.study_update(study=study, status="open")
    # The researcher's page: refused with the message, then opened with the acknowledgement.
    page = Client()
    page.force_login(researcher)
    response = page.post(f"/studies/{study.slug}/status/", {"status": "open"}, follow=True)
    assert "would unblind raters" in response.content.decode()
    assert Study.objects.get(pk=study.pk).status == "draft"
    response = page.post(
        f"/studies/{study.slug}/status/",
        {"status": "open", "acknowledge_blinding_risk": "on", "reason": "known"},
    )
    assert Study.objects.get(pk=study.pk).status == "open"
    # The transition API (scoring's) too.
    other = sure_study("sure-ways-2", owner=researcher)
    api = api_client_for(researcher)
    url = f"/api/v1/studies/{other.slug}/transition/"
    assert api.post(url, {"to": "open"}, format="json").status_code == 409
    accepted = api.post(
        url, {"to": "open", "acknowledge_blinding_risk": True, "reason": "ok"}, format="json"
    )
    assert accepted.status_code == 200 and accepted.json()["state"] == "open"
    # Closing and opening again is a move into open like the first.
    services.study_transition(study=other, target="closed")
    assert api.post(url, {"to": "open"}, format="json").status_code == 409


def test_study_page_shows_the_audit(researcher) -> None:
    study = sure_study("sure-page", owner=researcher)
    page = Client()
    page.force_login(researcher)
    html = page.get(f"/studies/{study.slug}/").content.decode()
    assert "Blinding audit" in html and "At risk" in html
    assert "first_word:Sure!" in html and "leading_whitespace" in html
    assert "stripping the opener “Sure!”" in html
    response = page.post(f"/studies/{study.slug}/display-prefixes/", {"prefixes": "Sure!\n"})
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.display_strip_prefixes == ["Sure!"] and not study.blinding_audit["at_risk"]
    assert "Blind enough" in page.get(f"/studies/{study.slug}/").content.decode()


# --- the audit endpoint and command ---------------------------------------------------------


def test_blinding_audit_api_for_researchers_only(researcher, researcher_api, rater_api) -> None:
    study = sure_study("sure-api", owner=researcher)
    url = f"/api/v1/studies/{study.slug}/blinding-audit/"
    response = researcher_api.get(url)
    assert response.status_code == 200
    body = response.json()
    assert body["auc"] >= 0.99 and body["auc_without_length"] >= 0.99
    assert body["auc_displayed_without_length"] > 0.75 and body["at_risk"] is True
    assert body["n_outputs"] == 2 * ITEMS
    tell = next(t for t in body["tells"] if t["feature"] == "leading_whitespace")
    assert (tell["base_rate"], tell["tuned_rate"]) == (0.0, 1.0)
    assert {
        "kind": "strip_prefix",
        "enabled": False,
        "removes": ["first_word:Sure!"],
        "prefix": "Sure!",
    } in body["normalisations"]
    assert rater_api.get(url).status_code == 403
    assert APIClient().get(url).status_code in (401, 403)
    assert rater_api.post(url).status_code == 403
    assert researcher_api.post(url).status_code == 200


def test_blinding_audit_api_before_any_audit_is_404_until_run(researcher, researcher_api) -> None:
    # Running the audit stores it on the study: a change, so the researcher owns the study.
    services.study_create(slug="empty", name="e", task_type="generation", created_by=researcher)
    url = "/api/v1/studies/empty/blinding-audit/"
    response = researcher_api.get(url)
    assert response.status_code == 404 and "blinding_audit empty" in response.json()["detail"]
    ran = researcher_api.post(url)
    assert ran.status_code == 200 and ran.json()["n_outputs"] == 0
    assert ran.json()["auc"] is None
    assert researcher_api.get(url).status_code == 200


def test_blinding_audit_command_text_and_json(
    researcher,
) -> None:
    study = sure_study("sure-cli", owner=researcher)
    out = io.StringIO()
    call_command("blinding_audit", study.slug, "--format", "json", stdout=out)
    body = json.loads(out.getvalue())
    assert body["study"] == study.slug and body["auc"] >= 0.99
    assert {t["feature"] for t in body["tells"]} >= {"leading_whitespace", "first_word:Sure!"}
    out = io.StringIO()
    call_command("blinding_audit", study.slug, stdout=out)
    text = out.getvalue()
    assert "AT RISK" in text and "first_word:Sure!" in text and "strip_prefix 'Sure!'" in text


def test_create_study_command_takes_prefixes() -> None:
    out = io.StringIO()
    call_command(
        "create_study", "cli-p", "--name", "p", "--task", "chat", "--strip-prefix", "Sure!",
        "--strip-prefix", "Certainly!", stdout=out,
    )  # fmt: skip
    assert Study.objects.get(slug="cli-p").display_strip_prefixes == ["Sure!", "Certainly!"]


def test_import_reports_the_audit(researcher, researcher_api) -> None:
    services.study_create(slug="imp", name="i", task_type="generation", created_by=researcher)
    records = [
        {"id": f"q{i}", "prompt": f"Q{i}", "base": b, "tuned": t}
        for i, (b, t) in enumerate(sure_pairs(20))
    ]
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("sure.jsonl", jsonl_bytes(records))
    response = researcher_api.post(
        "/api/v1/studies/imp/import/", {"file": upload, "format": "jsonl"}, format="multipart"
    )
    assert response.status_code == 201
    audit = response.json()["blinding_audit"]
    assert audit["at_risk"] is True and audit["tells_displayed"][0]["feature"] == "first_word:Sure!"


def test_transition_study_command_opens_only_with_an_acknowledged_blinding_risk(
    researcher,
) -> None:
    study = sure_study("sure-cli", owner=researcher)
    err = io.StringIO()
    with pytest.raises(CommandError, match="Sure!"):
        call_command("transition_study", study.slug, "open", stdout=io.StringIO(), stderr=err)
    study.refresh_from_db()
    assert study.status == "draft"
    out = io.StringIO()
    call_command(
        "transition_study",
        study.slug,
        "open",
        "--acknowledge-blinding-risk",
        "--reason",
        "openers are part of the product",
        "--as",
        researcher.username,
        stdout=out,
    )
    assert f"study {study.slug}: draft -> open (Collecting)" in out.getvalue()
    assert "next states: closed, reconciling" in out.getvalue()
    study.refresh_from_db()
    assert study.status == "open"
    event = AuditEvent.objects.filter(study=study, action="status").latest("id")
    assert event.actor == researcher and event.after == "open"
    assert event.details["reason"] == "openers are part of the product"
