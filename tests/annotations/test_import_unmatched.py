"""Real AlpacaEval pairs: instructions found in one file only. By default the import fails,
naming the file that has them, their lines and the fix; with `unmatched=skip` the shared
instructions are imported and the skipped rows reported. Nothing is written on failure."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from annotations import services
from annotations.errors import DomainValidationError
from annotations.importers import parse_alpaca_pair
from annotations.models import Item, Output

SHARED = 4


def alpaca(rows: list[tuple[str, str]], generator: str) -> bytes:
    """One object per line after the opening bracket: row i is on line i + 2."""
    lines = [
        json.dumps({"instruction": q, "output": out, "generator": generator}) for q, out in rows
    ]
    return ("[\n" + ",\n".join(lines) + "\n]\n").encode()


def pair_files() -> tuple[bytes, bytes]:
    """The tuned file has two instructions the base file lacks (lines 4 and 7)."""
    base = [(f"Question {i}", f"base {i}") for i in range(SHARED)]
    tuned = [(f"Question {i}", f" tuned {i}") for i in range(SHARED)]
    tuned.insert(2, ("Only in tuned A", " extra"))
    tuned.insert(5, ("Only in tuned B", " extra"))
    return alpaca(base, "m-base"), alpaca(tuned, "m-tuned")


def test_default_names_the_tuned_file_its_lines_and_the_fix() -> None:
    base, tuned = pair_files()
    result = parse_alpaca_pair(base, tuned, base_file="base.json", tuned_file="tuned.json")
    messages = [str(issue) for issue in result.issues]
    assert len(messages) == 2 and result.bad_lines_by_file == {"tuned.json": 2}
    assert messages[0].startswith("tuned.json:4: instruction 'Only in tuned A' has no match")
    assert messages[1].startswith("tuned.json:7: instruction 'Only in tuned B' has no match")
    assert all("in base.json" in m and "--unmatched skip" in m for m in messages)


def test_unmatched_on_both_sides_are_each_blamed_on_their_own_file() -> None:
    base = alpaca([("q1", "b"), ("only base", "b")], "b")
    tuned = alpaca([("q1", "t"), ("only tuned", "t")], "t")
    result = parse_alpaca_pair(base, tuned, base_file="b.json", tuned_file="t.json")
    assert [(i.file, i.line) for i in result.issues] == [("b.json", 3), ("t.json", 3)]
    assert result.bad_files() == "b.json (1), t.json (1)"
    skipped = parse_alpaca_pair(
        base, tuned, base_file="b.json", tuned_file="t.json", unmatched="skip"
    )
    assert skipped.ok and [i.prompt for i in skipped.items] == ["q1"]
    assert {name: row["count"] for name, row in skipped.skipped_report().items()} == {
        "b.json": 1,
        "t.json": 1,
    }


def test_skip_keeps_the_shared_instructions_and_reports_the_rest() -> None:
    base, tuned = pair_files()
    result = parse_alpaca_pair(
        base, tuned, base_file="base.json", tuned_file="tuned.json", unmatched="skip"
    )
    assert result.ok and len(result.items) == SHARED
    report = result.skipped_report(examples=1)
    assert report["tuned.json"]["count"] == 2
    assert report["tuned.json"]["first"] == [
        "tuned.json:4: instruction 'Only in tuned A' has no match in base.json"
    ]
    # Bad rows are still errors under skip; and files that share nothing are refused.
    nothing = parse_alpaca_pair(
        alpaca([("a", "x")], "b"), alpaca([("b", "y")], "t"),
        base_file="b.json", tuned_file="t.json", unmatched="skip",
    )  # fmt: skip
    assert not nothing.ok and "share no instruction" in str(nothing.issues[0])
    with pytest.raises(ValueError):
        parse_alpaca_pair(base, tuned, base_file="b", tuned_file="t", unmatched="ignore")


@pytest.mark.django_db
def test_service_summary_names_the_right_file_and_writes_nothing() -> None:
    study = services.study_create(slug="alp", name="a", task_type="chat")
    base, tuned = pair_files()
    parsed = parse_alpaca_pair(base, tuned, base_file="base.json", tuned_file="tuned.json")
    with pytest.raises(DomainValidationError) as caught:
        services.items_import(study=study, parsed=parsed, source="base.json")
    assert caught.value.message == "2 bad line(s) in tuned.json; nothing was imported"
    assert Item.objects.count() == 0 and Output.objects.count() == 0


@pytest.mark.django_db
def test_cli_fails_by_default_and_skips_when_asked(tmp_path) -> None:
    services.study_create(slug="alp", name="a", task_type="chat")
    base_bytes, tuned_bytes = pair_files()
    base, tuned = tmp_path / "base.json", tmp_path / "tuned.json"
    base.write_bytes(base_bytes)
    tuned.write_bytes(tuned_bytes)
    command = ["import_pairs", "alp", str(base), "--format", "alpaca", "--tuned", str(tuned)]
    err = io.StringIO()
    with pytest.raises(CommandError, match=f"2 bad line\\(s\\) in {tuned}"):
        call_command(*command, stderr=err)
    assert f"{tuned}:4: instruction 'Only in tuned A' has no match in {base}" in err.getvalue()
    assert "--unmatched skip" in err.getvalue()
    assert Item.objects.count() == 0
    out = io.StringIO()
    call_command(*command, "--unmatched", "skip", stdout=out, stderr=io.StringIO())
    assert Item.objects.count() == SHARED and Output.objects.count() == 2 * SHARED
    assert f"skipped 2 unmatched row(s) of {tuned}" in out.getvalue()
    assert f"{tuned}:7: instruction 'Only in tuned B'" in out.getvalue()
    assert "blinding audit:" in out.getvalue()


@pytest.mark.django_db
def test_api_unmatched_error_then_skip(researcher, researcher_api) -> None:
    services.study_create(slug="alp", name="a", task_type="chat", created_by=researcher)
    base, tuned = pair_files()

    def post(**extra):
        data = {
            "file": SimpleUploadedFile("base.json", base),
            "tuned_file": SimpleUploadedFile("tuned.json", tuned),
            "format": "alpaca",
            **extra,
        }
        return researcher_api.post("/api/v1/studies/alp/import/", data, format="multipart")

    refused = post()
    assert refused.status_code == 400
    assert refused.json()["detail"] == "2 bad line(s) in tuned.json; nothing was imported"
    assert refused.json()["errors"][0].startswith("tuned.json:4:")
    assert Item.objects.count() == 0
    imported = post(unmatched="skip")
    assert imported.status_code == 201, imported.content
    body = imported.json()
    assert body["items"] == SHARED
    assert body["skipped"]["tuned.json"]["count"] == 2
    assert body["skipped"]["tuned.json"]["first"][1].startswith("tuned.json:7:")
    assert body["blinding_audit"]["n_outputs"] == 2 * SHARED
    assert post(unmatched="maybe").status_code == 400


@pytest.mark.django_db
def test_page_import_skips_and_lists_what_it_skipped(researcher) -> None:
    import re

    from django.test import Client

    services.study_create(slug="alp", name="a", task_type="chat", created_by=researcher)
    base, tuned = pair_files()
    page = Client()
    page.force_login(researcher)
    preview = page.post(
        "/studies/alp/import/",
        {
            "format": "alpaca",
            "unmatched": "skip",
            "file": SimpleUploadedFile("base.json", base),
            "tuned_file": SimpleUploadedFile("tuned.json", tuned),
        },
    ).content.decode()
    assert f"Preview: {SHARED} items ready" in preview
    assert "2 unmatched rows of tuned.json will be skipped" in preview
    assert "tuned.json:7: instruction &#x27;Only in tuned B&#x27;" in preview
    assert Item.objects.count() == 0
    token = re.search(r'name="token" value="([^"]+)"', preview).group(1)
    response = page.post("/studies/alp/import/confirm/", {"token": token}, follow=True)
    html = response.content.decode()
    assert f"Imported {SHARED} items." in html
    assert "Skipped 2 unmatched row(s) of tuned.json" in html
    assert Item.objects.count() == SHARED


@pytest.mark.django_db
def test_cli_warns_when_an_open_study_gets_outputs_with_tells(tmp_path) -> None:
    from tests.annotations.blinding_data import sure_pairs
    from tests.factories import jsonl_bytes

    services.study_create(slug="live", name="l", task_type="chat", status="open")
    path = tmp_path / "sure.jsonl"
    records = [
        {"prompt": f"Q{i}", "base": b, "tuned": t} for i, (b, t) in enumerate(sure_pairs(20))
    ]
    path.write_bytes(jsonl_bytes(records))
    out, err = io.StringIO(), io.StringIO()
    call_command("import_pairs", "live", str(path), stdout=out, stderr=err)
    assert "AT RISK" in out.getvalue()
    assert "live is open, so raters see these tells now" in err.getvalue()
