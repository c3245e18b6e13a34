"""A study from start to finish on the researcher's pages: create, upload with a preview (every
`file:line` error, nothing written until confirmed), settings, raters, open (with the blinding
acknowledgement when the audit asks for it), close. The pages call the services the API and
the CLI call; these tests check what the pages add: the preview, the confirmation, the forms."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotations import services
from annotations.errors import StudyNotOpenError
from annotations.models import AuditEvent, Item, Study
from tests.annotations.test_blinding_study import sure_study
from tests.factories import jsonl_bytes, make_study, make_user, pair_records

pytestmark = pytest.mark.django_db


@pytest.fixture
def page(researcher) -> Client:
    client = Client()
    client.force_login(researcher)
    return client


@pytest.fixture
def draft(researcher) -> Study:
    return services.study_create(
        slug="pages", name="Pages", task_type="generation", created_by=researcher
    )


def upload(page: Client, study: Study, data: bytes, name: str = "pairs.jsonl", **fields):
    return page.post(
        f"/studies/{study.slug}/import/",
        {"format": "jsonl", "file": SimpleUploadedFile(name, data), **fields},
    )


def token_in(html: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', html)
    assert found, "the preview offers no confirmation"
    return found.group(1)


def imports_recorded() -> int:
    return AuditEvent.objects.filter(action="items_imported").count()


BAD_LINES = [
    json.dumps({"id": "a", "prompt": "p", "base": "b", "tuned": "t"}),
    '{"id": "b", "prompt": ',
    json.dumps({"id": "c", "prompt": "p", "base": "b"}),
    json.dumps({"id": "d", "prompt": "p", "base": "b", "tuned": "t", "gold": "left"}),
    json.dumps({"id": "a", "prompt": "again", "base": "b", "tuned": "t"}),
]


def test_a_file_with_errors_shows_every_line_and_writes_nothing(page, draft) -> None:
    before = Item.objects.count()
    response = upload(page, draft, ("\n".join(BAD_LINES) + "\n").encode(), name="bad.jsonl")
    assert response.status_code == 200
    html = response.content.decode()
    assert "4 bad line(s) in bad.jsonl; nothing was imported" in html
    errors = re.findall(r"<li><code>(bad\.jsonl:\d+: [^<]+)</code></li>", html)
    assert [e.split(": ", 1)[0] for e in errors] == [
        "bad.jsonl:2",
        "bad.jsonl:3",
        "bad.jsonl:4",
        "bad.jsonl:5",
    ]
    assert "invalid JSON" in errors[0]
    assert "missing field &#x27;tuned&#x27;" in errors[1]
    assert "field &#x27;gold&#x27; must be one of" in errors[2]
    assert "duplicate id &#x27;a&#x27; (first on line 1)" in errors[3]
    assert 'name="token"' not in html and "confirm-import" not in html
    assert Item.objects.count() == before
    assert imports_recorded() == 0


def test_more_errors_than_listed_are_counted(page, draft, settings) -> None:
    settings.IMPORT_MAX_ERRORS = 3
    lines = ["not json"] * 7
    html = upload(page, draft, "\n".join(lines).encode()).content.decode()
    assert "7 bad line(s) in pairs.jsonl" in html
    assert html.count("<li><code>pairs.jsonl:") == 3
    assert "… and 4 more not listed (the first 3 are shown)." in html


def test_a_good_file_previews_then_imports_on_confirm(page, draft, researcher) -> None:
    records = pair_records(7, gold=2)
    response = upload(page, draft, jsonl_bytes(records))
    html = response.content.decode()
    assert "Preview: 9 items ready (2 gold)" in html
    # The first five, as they will be stored, and nothing beyond them.
    assert all(f"item-0000{i}" in html for i in range(5))
    assert "item-00005" not in html and "gold-000" not in html
    assert Item.objects.filter(study=draft).count() == 0
    assert imports_recorded() == 0

    confirmed = page.post(f"/studies/{draft.slug}/import/confirm/", {"token": token_in(html)})
    assert confirmed.status_code == 302
    assert confirmed["Location"] == f"/studies/{draft.slug}/#blinding-audit"
    assert Item.objects.filter(study=draft).count() == 9
    assert Item.objects.filter(study=draft, is_gold=True).count() == 2
    event = AuditEvent.objects.get(action="items_imported")
    assert event.actor == researcher and event.study_id == draft.pk
    assert event.details == {"source": "pairs.jsonl", "items": 9, "skipped": {}}
    draft.refresh_from_db()
    assert draft.blinding_audit is not None
    assert "Imported 9 items." in page.get(f"/studies/{draft.slug}/").content.decode()


def test_a_confirmation_imports_once(page, draft) -> None:
    token = token_in(upload(page, draft, jsonl_bytes(pair_records(3))).content.decode())
    url = f"/studies/{draft.slug}/import/confirm/"
    page.post(url, {"token": token})
    again = page.post(url, {"token": token}, follow=True)
    assert "That preview is no longer waiting" in again.content.decode()
    assert Item.objects.filter(study=draft).count() == 3
    assert imports_recorded() == 1


def test_the_confirmation_imports_the_upload_kept_on_the_server(page, draft) -> None:
    token = token_in(upload(page, draft, jsonl_bytes(pair_records(2))).content.decode())
    # Whatever else the browser sends with the token is not read.
    forged = SimpleUploadedFile("pairs.jsonl", jsonl_bytes(pair_records(50, prefix="forged")))
    page.post(f"/studies/{draft.slug}/import/confirm/", {"token": token, "file": forged})
    ids = set(Item.objects.filter(study=draft).values_list("external_id", flat=True))
    assert ids == {"item-00000", "item-00001"}


def test_a_token_is_good_only_for_its_user_and_study(page, draft, researcher) -> None:
    token = token_in(upload(page, draft, jsonl_bytes(pair_records(2))).content.decode())
    colleague = make_user("researcher")
    services.collaborator_add(study=draft, username=colleague.username, actor=researcher)
    other_page = Client()
    other_page.force_login(colleague)
    refused = other_page.post(f"/studies/{draft.slug}/import/confirm/", {"token": token})
    assert refused.status_code == 302 and refused["Location"] == f"/studies/{draft.slug}/import/"
    other_study = services.study_create(
        slug="pages-2", name="Other", task_type="generation", created_by=researcher
    )
    page.post(f"/studies/{other_study.slug}/import/confirm/", {"token": token})
    assert Item.objects.count() == 0
    # Still waiting for its own user and study.
    page.post(f"/studies/{draft.slug}/import/confirm/", {"token": token})
    assert Item.objects.filter(study=draft).count() == 2


def test_ids_the_study_has_are_refused_in_the_preview(page, researcher) -> None:
    study = make_study(items=3, owner=researcher, status="draft")
    html = upload(page, study, jsonl_bytes(pair_records(4))).content.decode()
    assert "3 id(s) already exist in study" in html
    assert "pairs.jsonl:1: id &#x27;item-00000&#x27; already exists" in html
    assert 'name="token"' not in html
    assert Item.objects.filter(study=study).count() == 3


def test_an_alpaca_pair_needs_its_tuned_file(page, draft) -> None:
    data = json.dumps([{"instruction": "q", "output": "a"}]).encode()
    html = upload(page, draft, data, name="base.json", format="alpaca").content.decode()
    assert "The AlpacaEval format needs the tuned model&#x27;s file too." in html
    assert "Preview:" not in html


def test_the_upload_limit_is_shown_and_enforced(page, draft, settings) -> None:
    settings.IMPORT_MAX_UPLOAD_BYTES = 2_000
    html = page.get(f"/studies/{draft.slug}/import/").content.decode()
    assert "Up to 2.0\xa0KB in all" in html and 'data-max-bytes="2000"' in html
    refused = upload(page, draft, jsonl_bytes(pair_records(40)))
    assert refused.status_code == 413
    assert "over the limit of 2,000 bytes (IMPORT_MAX_UPLOAD_BYTES)" in refused.content.decode()
    assert Item.objects.count() == 0


def test_creating_a_study_leads_to_the_import(page) -> None:
    response = page.post(
        "/studies/new/",
        {
            "slug": "fresh",
            "name": "Fresh",
            "task_type": "generation",
            "overlap": 3,
            "gold_rate": 0,
            "queue_order": "random",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/studies/fresh/import/"


def test_settings_set_overlap_gold_rate_and_instructions(page, draft) -> None:
    html = page.get(f"/studies/{draft.slug}/settings/").content.decode()
    assert 'name="overlap" value="3"' in html
    fields = {
        "name": "Pages",
        "rater_title": "Which answer is better?",
        "overlap": 4,
        "max_overlap": 6,
        "instructions": "Prefer the answer that is correct, then the clearer one.",
        "gold_rate": 0.1,
        "min_time_ms": "",
        "queue_order": "random",
    }
    saved = page.post(f"/studies/{draft.slug}/settings/", fields)
    assert saved.status_code == 302
    draft.refresh_from_db()
    assert (draft.overlap, draft.max_overlap, draft.gold_rate) == (4, 6, 0.1)
    assert draft.instructions.startswith("Prefer the answer")
    assert draft.rater_title == "Which answer is better?"
    event = AuditEvent.objects.get(action="updated", study=draft)
    assert set(event.details["fields"]) >= {"overlap", "gold_rate", "instructions"}

    refused = page.post(f"/studies/{draft.slug}/settings/", {**fields, "max_overlap": 2})
    assert refused.status_code == 200
    assert "Must be at least the votes per item (k)." in refused.content.decode()
    draft.refresh_from_db()
    assert draft.max_overlap == 6


def test_the_study_page_offers_the_moves_of_its_state(page, researcher) -> None:
    rater = make_user()
    study = make_study(items=2, overlap=1, owner=researcher, status="draft", raters=[rater])

    def moves() -> list[str]:
        html = page.get(f"/studies/{study.slug}/").content.decode()
        return re.findall(r'class="status-move" data-move="(\w+)"', html)

    assert moves() == ["open"]
    opened = page.post(f"/studies/{study.slug}/status/", {"status": "open"})
    assert opened["Location"] == f"/studies/{study.slug}/#status"
    assert moves() == ["closed", "reconciling"]
    assert services.assignment_next(study=study, rater=rater) is not None
    page.post(f"/studies/{study.slug}/status/", {"status": "closed", "reason": "enough votes"})
    study.refresh_from_db()
    assert study.status == "closed"
    with pytest.raises(StudyNotOpenError):
        services.assignment_next(study=study, rater=rater)
    closed = AuditEvent.objects.get(action="status", after="closed", study=study)
    assert closed.details == {"reason": "enough votes"} and closed.actor == researcher
    assert moves() == ["open", "reconciling"]


def test_a_bad_status_form_says_so(page, draft) -> None:
    response = page.post(f"/studies/{draft.slug}/status/", {"status": "nonsense"}, follow=True)
    assert "Select a valid choice" in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_opening_with_a_blinding_risk_needs_the_acknowledgement(page, researcher) -> None:
    study = sure_study("sure-pages", owner=researcher)
    html = page.get(f"/studies/{study.slug}/").content.decode()
    assert "The blinding audit says raters could tell the sides apart." in html
    assert "<details open><summary>Blinding-risk acknowledgement" in html
    url = f"/studies/{study.slug}/status/"

    refused = page.post(url, {"status": "open"}, follow=True).content.decode()
    assert "would unblind raters" in refused and "first_word:Sure!" in refused
    no_reason = page.post(url, {"status": "open", "acknowledge_blinding_risk": "on"}, follow=True)
    assert "acknowledge_blinding_risk needs a reason" in no_reason.content.decode()
    study.refresh_from_db()
    assert study.status == "draft"
    assert not AuditEvent.objects.filter(action="blinding_risk_acknowledged").exists()

    page.post(url, {"status": "open", "acknowledge_blinding_risk": "on", "reason": "pilot"})
    study.refresh_from_db()
    assert study.status == "open"
    acknowledged = AuditEvent.objects.get(action="blinding_risk_acknowledged", study=study)
    assert acknowledged.details["reason"] == "pilot" and acknowledged.actor == researcher


def test_the_steps_link_each_stage(page, draft) -> None:
    html = page.get(f"/studies/{draft.slug}/").content.decode()
    steps = re.findall(r'<li data-step="(\w+)"', html)
    assert steps == ["import", "audit", "settings", "raters", "open", "watch", "close"]
    for url in (
        f"/studies/{draft.slug}/import/",
        f"/studies/{draft.slug}/settings/",
        f"/studies/{draft.slug}/raters/",
        "#assign-raters",
        "#status",
    ):
        assert f'href="{url}"' in html, url


def test_the_watch_step_links_the_dashboard(page, draft) -> None:
    html = page.get(f"/studies/{draft.slug}/").content.decode()
    assert f'<strong>Watch:</strong> <a href="/studies/{draft.slug}/dashboard/">' in html


def test_readers_who_may_not_change_the_study_get_no_forms(draft) -> None:
    reader = Client()
    reader.force_login(make_user("researcher"))
    html = reader.get(f"/studies/{draft.slug}/").content.decode()
    assert "status-move" not in html and "/import/" not in html and "/settings/" not in html
    assert reader.get(f"/studies/{draft.slug}/import/").status_code == 403
    assert reader.get(f"/studies/{draft.slug}/settings/").status_code == 403


def test_a_pending_upload_is_taken_once() -> None:
    owner = make_user("researcher")
    study = services.study_create(slug="kept", name="k", task_type="chat", created_by=owner)
    kept = services.PendingImport(
        file_format="jsonl", unmatched="error", file_name="x.jsonl", data=b"abc" * 1000
    )
    token = services.pending_import_keep(user=owner, study=study, upload=kept)
    stranger = make_user("researcher")
    assert services.pending_import_take(token=token, user=stranger, study=study) is None
    assert services.pending_import_take(token=token, user=owner, study=study) == kept
    assert services.pending_import_take(token=token, user=owner, study=study) is None
