from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotations import services
from annotations.models import Item, Output, Study, StudyRater
from tests.factories import jsonl_bytes, make_user, pair_records

pytestmark = pytest.mark.django_db


def run(*args, stdin: str | None = None, monkeypatch=None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_full_cli_flow(tmp_path) -> None:
    run("create_user", "ann", "--role", "rater", "--password", "s3cret-pw")
    run(
        "create_study",
        "cli-study",
        "--name",
        "CLI",
        "--task",
        "generation",
        "--overlap",
        "1",
        "--status",
        "open",
    )
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(jsonl_bytes(pair_records(4)))
    out, _ = run("import_pairs", "cli-study", str(path))
    assert "imported 4 items" in out
    run("assign_raters", "cli-study", "ann")
    study = Study.objects.get(slug="cli-study")
    assert StudyRater.objects.filter(study=study, rater__username="ann").exists()
    rater = study.memberships.get().rater
    for _ in range(4):
        a = services.assignment_next(study=study, rater=rater)
        services.judgment_submit(assignment_id=a.pk, rater=rater, choice="2", time_ms=900)
    out_file = tmp_path / "j.csv"
    run("export_judgments", "cli-study", "--format", "csv", "--out", str(out_file))
    rows = list(csv.DictReader(out_file.open()))
    assert len(rows) == 4 and {r["rater"] for r in rows} == {"ann"}
    for row in rows:
        # Every choice was Response 2, so the preferred system is the one shown as Response 2.
        assert row["choice"] == "response_2"
        assert {row["response_1_system"], row["response_2_system"]} == {"base", "tuned"}
        assert row["preferred"] == row["response_2_system"]
    out, _ = run("export_judgments", "cli-study", "--format", "jsonl")
    assert len([json.loads(line) for line in out.splitlines()]) == 4


def test_import_with_bad_lines_exits_non_zero_and_writes_nothing(tmp_path) -> None:
    services.study_create(slug="s", name="s", task_type="generation")
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        jsonl_bytes(pair_records(2))
        + b"not json\n"
        + b'{"prompt": "p", "base": "", "tuned": "t"}\n'
    )
    err = io.StringIO()
    with pytest.raises(CommandError, match="2 bad line"):
        call_command("import_pairs", "s", str(path), stderr=err)
    assert f"{path}:3: invalid JSON" in err.getvalue()
    assert f"{path}:4: field 'base' is empty" in err.getvalue()
    assert Item.objects.count() == 0 and Output.objects.count() == 0


def test_alpaca_import(tmp_path) -> None:
    services.study_create(slug="alp", name="a", task_type="chat")
    base = tmp_path / "base.json"
    tuned = tmp_path / "tuned.json"
    base.write_text(
        json.dumps(
            [{"instruction": f"q{i}", "output": f"b{i}", "generator": "m-base"} for i in range(3)]
        )
    )
    tuned.write_text(
        json.dumps(
            [{"instruction": f"q{i}", "output": f"t{i}", "generator": "m-tuned"} for i in range(3)]
        )
    )
    run("import_pairs", "alp", str(base), "--format", "alpaca", "--tuned", str(tuned))
    assert Output.objects.filter(system="tuned", model_name="m-tuned").count() == 3


def test_create_user_reads_password_from_stdin(monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin-pw\n"))
    run("create_user", "bob", "--role", "researcher")
    from django.contrib.auth import authenticate

    assert authenticate(username="bob", password="from-stdin-pw") is not None


def test_unknown_study_and_non_rater_are_clear_errors() -> None:
    make_user("researcher", username="res")
    with pytest.raises(CommandError, match="no study 'nope'"):
        run("assign_raters", "nope", "res")
    services.study_create(slug="s2", name="s", task_type="chat")
    with pytest.raises(CommandError, match="without the rater role: res"):
        run("assign_raters", "s2", "res")


def test_import_with_a_lone_surrogate_is_a_clear_error_not_a_traceback(tmp_path) -> None:
    services.study_create(slug="sur", name="s", task_type="generation")
    path = tmp_path / "sur.jsonl"
    path.write_bytes(b'{"prompt": "p", "base": "b\\udc00", "tuned": "t"}\n')
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 bad line"):
        call_command("import_pairs", "sur", str(path), stderr=err)
    assert f"{path}:1: field 'base' contains a lone UTF-16 surrogate" in err.getvalue()
    assert Item.objects.count() == 0


@pytest.mark.parametrize("password", ["x", "12345678901", "password"])
def test_create_user_refuses_weak_passwords(password) -> None:
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("create_user", "weak", "--role", "rater", "--password", password, stderr=err)
    assert "password" in err.getvalue().lower()
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="weak").exists()


def test_create_study_says_the_state_it_made_and_how_to_open_it(tmp_path) -> None:
    out, _ = run("create_study", "drafted", "--name", "D", "--task", "generation")
    assert "created study drafted: draft (Draft)" in out
    assert "manage.py import_pairs drafted FILE" in out
    assert "manage.py transition_study drafted open" in out and "/studies/drafted/" in out
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(jsonl_bytes(pair_records(6)))
    run("import_pairs", "drafted", str(path))
    # The command it names works as printed.
    out, _ = run("transition_study", "drafted", "open")
    assert "study drafted: draft -> open (Collecting)" in out
    assert Study.objects.get(slug="drafted").status == "open"

    out, _ = run(
        "create_study", "opened", "--name", "O", "--task", "generation", "--status", "open"
    )
    assert "created study opened: open (Collecting)" in out
    assert "manage.py assign_raters opened" in out and "/rate/" in out


def test_transition_study_refuses_a_move_the_study_cannot_make() -> None:
    run("create_study", "stuck", "--name", "S", "--task", "generation")
    with pytest.raises(CommandError, match="cannot move from draft to ready"):
        run("transition_study", "stuck", "ready")
    with pytest.raises(CommandError, match="no user 'ghost'"):
        run("transition_study", "stuck", "open", "--as", "ghost")
