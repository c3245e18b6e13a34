"""What the exports call things: slots as raters saw them ("Response 1" / "Response 2"), the
systems behind them for the researcher, items by the id given at import, and the prompt and
both outputs wherever a reader needs them."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.test import override_settings

from annotations import services
from annotations.models import Judgment
from scoring.exports import write_export
from scoring.models import ExportKind
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def slotted_study(researcher):
    """Two raters on four items: the first always picks Response 1, the second Response 2
    except a tie on the last item."""
    raters = [make_user(), make_user()]
    study = make_study(items=4, overlap=2, raters=raters, owner=researcher)
    for index, rater in enumerate(raters):
        while (a := services.assignment_next(study=study, rater=rater)) is not None:
            last = a.item.external_id == "item-00003"
            choice = "1" if index == 0 else ("tie" if last else "2")
            services.judgment_submit(assignment_id=a.pk, rater=rater, choice=choice, time_ms=3000)
    return study


def export_text(study, kind: str, tmp_path) -> str:
    path = tmp_path / f"{kind}.out"
    with override_settings(EXPORT_ROOT=tmp_path):
        write_export(study=study, kind=kind, options={}, path=path)
    return path.read_text(encoding="utf-8")


def test_judgments_name_slots_as_raters_saw_them(slotted_study, tmp_path) -> None:
    rows = list(csv.DictReader(io.StringIO(export_text(slotted_study, "judgments_csv", tmp_path))))
    assert len(rows) == 8
    columns = set(rows[0])
    assert {"choice", "response_1_system", "response_2_system", "preferred"} <= columns
    assert not {"left_system", "right_system"} & columns
    assert {r["choice"] for r in rows} == {"response_1", "response_2", "tie"}
    stored = {
        (j.item.external_id, j.rater.username): j
        for j in Judgment.objects.select_related("item", "rater")
    }
    for row in rows:
        judgment = stored[(row["item_id"], row["rater"])]
        # The slot columns are the server's truth of which system was shown where.
        assert row["response_1_system"] == judgment.left_system
        assert {row["response_1_system"], row["response_2_system"]} == {"base", "tuned"}
        if row["choice"] == "response_1":
            assert row["preferred"] == row["response_1_system"]
        elif row["choice"] == "response_2":
            assert row["preferred"] == row["response_2_system"]
        else:
            assert row["preferred"] == "tie"


def test_judgments_jsonl_has_the_csv_rows(slotted_study, tmp_path) -> None:
    from_csv = list(
        csv.DictReader(io.StringIO(export_text(slotted_study, "judgments_csv", tmp_path)))
    )
    from_jsonl = [
        json.loads(line)
        for line in export_text(slotted_study, ExportKind.JUDGMENTS_JSONL, tmp_path).splitlines()
    ]
    assert [r["choice"] for r in from_jsonl] == [r["choice"] for r in from_csv]
    assert list(from_jsonl[0]) == list(from_csv[0])  # same columns, same order
    assert isinstance(from_jsonl[0]["time_ms"], int)


def test_report_names_position_bias_by_slot(slotted_study, tmp_path) -> None:
    report = json.loads(export_text(slotted_study, "report_json", tmp_path))
    by_rater = {r["rater"]: r for r in report["raters"]}
    first, second = (by_rater[m.rater.username] for m in slotted_study.memberships.order_by("id"))
    assert first["response_1_rate"] == 1.0 and second["response_1_rate"] == 0.0
    assert all("left_rate" not in r and "left_p_value" not in r for r in report["raters"])
    assert report["schema_version"] == 3


LONG = "word " * 200  # 1,000 characters: longer than the HTML excerpt


@pytest.fixture
def split_study(researcher):
    """Three items imported with their own ids (one long), two raters who always split: the
    first prefers base, the second tuned."""
    from annotations.importers import parse_jsonl
    from tests.factories import BASE_MODEL, TUNED_MODEL, jsonl_bytes

    raters = [make_user(), make_user()]
    study = services.study_create(
        created_by=researcher,
        slug="split-study",
        name="Split study",
        task_type="generation",
        overlap=2,
        max_overlap=2,
        status="open",
        base_model=BASE_MODEL,
        tuned_model=TUNED_MODEL,
    )
    records = [
        {
            "id": "q-alpha",
            "prompt": "Why is the sky blue? " + LONG,
            "base": "Base says Rayleigh. " + LONG,
            "tuned": "Tuned says scattering. " + LONG,
        },
        {"id": "q-beta", "prompt": "Name a prime.", "base": "4", "tuned": "7"},
        {"id": "q-gamma", "prompt": "Say hi.", "base": "hi", "tuned": "hello"},
    ]
    services.items_import(
        study=study, parsed=parse_jsonl(jsonl_bytes(records), file="x.jsonl"), source="x"
    )
    services.raters_assign(study=study, usernames=[r.username for r in raters])
    for rater, wanted in zip(raters, ("base", "tuned"), strict=True):
        while (a := services.assignment_next(study=study, rater=rater)) is not None:
            choice = "1" if a.left_system == wanted else "2"
            services.judgment_submit(assignment_id=a.pk, rater=rater, choice=choice, time_ms=3000)
    return study, {r["id"]: r for r in records}


def test_item_rows_carry_the_import_id_prompt_and_both_outputs_in_full(
    split_study, tmp_path
) -> None:
    study, records = split_study
    rows = list(csv.DictReader(io.StringIO(export_text(study, "items_csv", tmp_path))))
    lines = export_text(study, "items_jsonl", tmp_path).splitlines()
    for parsed in (rows, [json.loads(line) for line in lines]):
        assert [r["item_id"] for r in parsed] == ["q-alpha", "q-beta", "q-gamma"]
        for row in parsed:
            record = records[row["item_id"]]
            assert row["prompt"] == record["prompt"]
            assert row["base_output"] == record["base"]
            assert row["tuned_output"] == record["tuned"]
            assert row["majority"] in ("", None)  # one vote each way: no majority
    assert list(rows[0])[:3] == ["item_id", "votes_base", "votes_tuned"]


def test_disagreements_carry_texts_in_json_and_csv_and_excerpts_in_html(
    split_study, tmp_path
) -> None:
    study, records = split_study
    report = json.loads(export_text(study, "report_json", tmp_path))
    listed = {d["item_id"]: d for d in report["disagreements"]}
    assert set(listed) == set(records)
    for item_id, entry in listed.items():
        assert entry["prompt"] == records[item_id]["prompt"]
        assert entry["base_output"] == records[item_id]["base"]
        assert entry["tuned_output"] == records[item_id]["tuned"]

    summary = dict(csv.reader(io.StringIO(export_text(study, "report_csv", tmp_path))))
    first = next(k for k, v in summary.items() if k.endswith(".item_id") and v == "q-alpha")
    index = first[: -len(".item_id")]
    assert summary[f"{index}.prompt"] == records["q-alpha"]["prompt"]
    assert summary[f"{index}.tuned_output"] == records["q-alpha"]["tuned"]

    html = export_text(study, "report_html", tmp_path)
    table = html[html.index('id="disagreements"') : html.index('id="decision"')]
    for header in ("Prompt", "Base output", "Tuned output"):
        assert f"<th>{header}</th>" in table
    assert "q-alpha" in table and "Name a prime." in table and "Tuned says scattering." in table
    assert records["q-alpha"]["prompt"].strip() not in table  # cut, not whole
    assert "…" in table and "hold them in full" in table
    assert "sha-" not in html


def test_the_review_page_shows_import_ids(split_study, researcher) -> None:
    from django.test import Client

    study, records = split_study
    client = Client()
    client.force_login(researcher)
    page = client.get(f"/studies/{study.slug}/disagreements/").content.decode()
    for item_id in records:
        assert f'data-item="{item_id}"' in page
    assert "sha-" not in page
    assert "<th>Shown as Response 1</th>" in page and "Shown left" not in page


def test_report_page_leads_back_and_offers_every_export(split_study, researcher, tmp_path):
    from django.test import Client

    study, _ = split_study
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    page = client.get(f"/studies/{study.slug}/report/").content.decode()
    assert f'href="/studies/{study.slug}/" id="back-to-study"' in page
    kinds = re.findall(r'data-kind="([a-z_]+)"', page)
    assert sorted(kinds) == sorted(ExportKind.values)
    assert f'data-export-start="/api/v1/studies/{study.slug}/exports/"' in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert '<script src="/static/js/exports.js" defer></script>' in page
    assert "script-src 'self'; connect-src 'self'" in page
    # The disagreement table on the page has the texts, as the HTML export has.
    assert "Tuned says scattering." in page and "Name a prime." in page
    # The file a researcher mails has neither the bar nor any script.
    exported = export_text(study, "report_html", tmp_path)
    assert "<script" not in exported and "data-export-start" not in exported
    assert "script-src" not in exported
    without_flagged = client.get(f"/studies/{study.slug}/report/?exclude_flagged_raters=1")
    # The report exports leave flagged raters out, as the page they are started from does.
    assert 'data-exclude-flagged-raters="1"' in without_flagged.content.decode()
    assert 'data-exclude-flagged-raters="1"' not in page
    detail = client.get(f"/studies/{study.slug}/").content.decode()
    assert sorted(re.findall(r'data-kind="([a-z_]+)"', detail)) == sorted(ExportKind.values)
    assert '<script src="/static/js/exports.js" defer></script>' in detail


def test_release_owner_gets_the_report_without_export_buttons(split_study) -> None:
    from django.test import Client

    study, _ = split_study
    owner = make_user("release_owner")
    client = Client()
    client.force_login(owner)
    response = client.get(f"/studies/{study.slug}/report/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "data-export-start" not in page and "back-to-study" not in page
    assert 'href="/runs/"' in page  # no run for this study: back to the runs list
