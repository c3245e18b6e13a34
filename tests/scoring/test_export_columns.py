"""What the exports call things: slots as raters saw them ("Response 1" / "Response 2"), the
systems behind them for the researcher, items by the id given at import, and the prompt and
both outputs wherever a reader needs them."""

from __future__ import annotations

import csv
import io
import json

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
