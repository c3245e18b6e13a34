from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command
from django.test import override_settings

from annotations import services
from scoring.models import ExportStatus, ReportExport
from tests.conftest import api_client_for
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged_study(researcher):
    raters = [make_user() for _ in range(3)]
    study = make_study(items=8, overlap=3, raters=raters, owner=researcher)
    for index, rater in enumerate(raters):
        while (a := services.assignment_next(study=study, rater=rater)) is not None:
            choice = (
                "tie" if (a.item_id + index) % 5 == 0 else ("2" if a.left_system == "base" else "1")
            )
            services.judgment_submit(assignment_id=a.pk, rater=rater, choice=choice, time_ms=4000)
    return study


def test_report_endpoint_has_the_documented_keys(judged_study, researcher_api) -> None:
    response = researcher_api.get(f"/api/v1/studies/{judged_study.slug}/report/")
    assert response.status_code == 200
    body = response.json()
    for key in (
        "items",
        "judgments",
        "win_rate",
        "length_adjusted_win_rate",
        "agreement",
        "judge_human",
        "raters",
        "metrics",
        "disagreements",
        "decision",
        "sha256",
    ):
        assert key in body
    for key in ("tuned", "tuned_no_ties", "ci95", "p_value"):
        assert key in body["win_rate"]
    for key in (
        "krippendorff_alpha",
        "krippendorff_alpha_ci95",
        "fleiss_kappa",
        "percent_agreement",
    ):
        assert key in body["agreement"]
    assert body["judgments"] == 24
    assert body["win_rate"]["tuned"] > 0.5


def test_raters_cannot_read_reports_or_exports(judged_study) -> None:
    rater = judged_study.memberships.first().rater
    client = api_client_for(rater)
    assert client.get(f"/api/v1/studies/{judged_study.slug}/report/").status_code == 403
    assert (
        client.post(
            f"/api/v1/studies/{judged_study.slug}/exports/", {"kind": "report_json"}, format="json"
        ).status_code
        == 403
    )


@pytest.mark.parametrize(
    "kind",
    [
        "report_json",
        "report_html",
        "report_csv",
        "items_csv",
        "items_jsonl",
        "judgments_csv",
        "judgments_jsonl",
        "dpo_jsonl",
    ],
)
def test_background_exports_stream_to_files(
    judged_study, researcher_api, eager_celery, tmp_path, kind
) -> None:
    with override_settings(EXPORT_ROOT=tmp_path), eager_celery(execute=True):
        response = researcher_api.post(
            f"/api/v1/studies/{judged_study.slug}/exports/", {"kind": kind}, format="json"
        )
    assert response.status_code == 202
    status = researcher_api.get(response.json()["status_url"]).json()
    assert status["status"] == "done", status
    download = researcher_api.get(status["download_url"])
    content = b"".join(download.streaming_content).decode()
    if kind == "report_json":
        assert json.loads(content)["judgments"] == 24
    elif kind == "report_html":
        assert "<svg" in content and judged_study.name in content
    elif kind == "items_csv":
        rows = list(csv.DictReader(io.StringIO(content)))
        assert len(rows) == 8 and "majority" in rows[0]
    elif kind == "judgments_jsonl":
        rows = [json.loads(line) for line in content.splitlines()]
        assert len(rows) == 24
        assert {r["choice"] for r in rows} <= {"response_1", "response_2", "tie"}
    elif kind == "dpo_jsonl":
        first = json.loads(content.splitlines()[0])
        assert set(first) >= {"prompt", "chosen", "rejected"}
    else:
        assert content.strip()
    assert not list(tmp_path.rglob("*.partial"))


def test_unknown_export_kind_is_400(judged_study, researcher_api) -> None:
    response = researcher_api.post(
        f"/api/v1/studies/{judged_study.slug}/exports/", {"kind": "pdf"}, format="json"
    )
    assert response.status_code == 400
    assert not ReportExport.objects.exists()


def test_failed_export_records_the_error(judged_study, tmp_path, monkeypatch) -> None:
    from scoring import exports

    export = ReportExport.objects.create(study=judged_study, kind="report_json")

    def boom(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(exports, "study_report", boom)
    with override_settings(EXPORT_ROOT=tmp_path), pytest.raises(RuntimeError):
        exports.export_build(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED and "disk full" in export.error
    # Neither a finished-looking file nor a partial one is left behind.
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_agreement_report_command_formats(judged_study, tmp_path) -> None:
    for fmt in ("json", "csv", "html"):
        out = tmp_path / f"report.{fmt}"
        call_command(
            "agreement_report",
            judged_study.slug,
            "--format",
            fmt,
            "--out",
            str(out),
            stdout=io.StringIO(),
        )
        assert out.stat().st_size > 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["agreement"]["n_raters"] == 3


def test_adjudication_api(judged_study, researcher_api) -> None:
    item = judged_study.items.first()
    response = researcher_api.post(
        f"/api/v1/studies/{judged_study.slug}/items/{item.external_id}/adjudication/",
        {"preference": "base", "rationale": "response 1 is factually right"},
        format="json",
    )
    assert response.status_code == 200
    bad = researcher_api.post(
        f"/api/v1/studies/{judged_study.slug}/items/{item.external_id}/adjudication/",
        {"preference": "base", "rationale": ""},
        format="json",
    )
    assert bad.status_code == 400


def test_report_page_renders(judged_study, researcher) -> None:
    from django.test import Client

    client = Client()
    client.force_login(researcher)
    page = client.get(f"/studies/{judged_study.slug}/report/")
    assert page.status_code == 200 and b"<svg" in page.content


def test_disagreement_page_lists_and_adjudicates(judged_study, researcher) -> None:
    from django.test import Client

    from annotations.models import Adjudication

    client = Client()
    client.force_login(researcher)
    page = client.get(f"/studies/{judged_study.slug}/disagreements/")
    assert page.status_code == 200
    item = judged_study.items.first()
    response = client.post(
        f"/studies/{judged_study.slug}/disagreements/",
        {"item_id": item.external_id, "preference": "tie", "rationale": "both fine"},
    )
    assert response.status_code == 302
    assert Adjudication.objects.get(item=item).preference == "tie"


def test_judgments_and_items_csv_escape_formula_cells(researcher_api, eager_celery, tmp_path):
    from annotations.importers import parse_jsonl
    from tests.factories import BASE_MODEL, TUNED_MODEL, jsonl_bytes

    rater = make_user()
    study = services.study_create(
        slug="formulas",
        name="Formulas",
        task_type="generation",
        overlap=1,
        status="open",
        base_model=BASE_MODEL,
        tuned_model=TUNED_MODEL,
    )
    records = [{"id": "=HYPERLINK(1)", "prompt": "p", "base": "b", "tuned": "t"}]
    services.items_import(
        study=study, parsed=parse_jsonl(jsonl_bytes(records), file="x.jsonl"), source="x"
    )
    services.raters_assign(study=study, usernames=[rater.username])
    assignment = services.assignment_next(study=study, rater=rater)
    services.judgment_submit(
        assignment_id=assignment.pk, rater=rater, choice="1", rationale="+cmd|' /C calc'!A0"
    )
    contents = {}
    for kind in ("judgments_csv", "items_csv"):
        with override_settings(EXPORT_ROOT=tmp_path), eager_celery(execute=True):
            response = researcher_api.post(
                f"/api/v1/studies/{study.slug}/exports/", {"kind": kind}, format="json"
            )
        status = researcher_api.get(response.json()["status_url"]).json()
        download = researcher_api.get(status["download_url"])
        contents[kind] = list(
            csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode()))
        )
    judgment = contents["judgments_csv"][0]
    assert judgment["item_id"] == "'=HYPERLINK(1)"
    assert judgment["rationale"] == "'+cmd|' /C calc'!A0"
    assert contents["items_csv"][0]["item_id"] == "'=HYPERLINK(1)"
