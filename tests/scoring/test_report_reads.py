"""The report's bulk reads: numeric columns (one aggregate statement on PostgreSQL, rows on
SQLite), the stored output lengths and the prefetch on a second connection."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from django.db import connection, transaction

from annotations import services
from annotations.models import Item, Judgment, Output
from scoring import reports
from scoring.models import JudgeVerdict, OutputScore
from scoring.reports import ReportOptions, build_report, report_sha256
from scoring.selectors import paired_score_columns
from tests.factories import make_study, make_user


def voted_study(n_items: int = 8, n_raters: int = 3):
    raters = [make_user() for _ in range(n_raters)]
    study = make_study(items=n_items, overlap=n_raters, raters=raters, gold=2)
    choices = ("1", "2", "tie", "both_bad")
    for r, rater in enumerate(raters):
        k = 0
        while (a := services.assignment_next(study=study, rater=rater)) is not None:
            services.judgment_submit(
                assignment_id=a.pk, rater=rater, choice=choices[(k + r) % 4], time_ms=3000 + k
            )
            k += 1
    items = list(Item.objects.filter(study=study).order_by("id"))
    for item in items:
        for output in item.outputs.all():
            OutputScore.objects.create(
                output=output,
                item=item,
                system=output.system,
                metric="m",
                version="1",
                value=float(len(output.text)),
            )
        JudgeVerdict.objects.create(
            item=item,
            judge_id="j",
            template="t",
            p_tuned=0.3 + 0.05 * (item.pk % 5),
            verdict=("tuned", "base", "tie")[item.pk % 3],
        )
    return study, items


@pytest.mark.django_db
def test_vote_columns_are_the_judgments() -> None:
    study, items = voted_study()
    untimed = Judgment.objects.filter(item=items[1]).order_by("id").first()
    Judgment.objects.filter(pk=untimed.pk).update(time_ms=None)
    Item.objects.filter(pk=items[0].pk).update(excluded=True)
    table = reports.vote_table(study)
    order = np.argsort(table["id"])
    expected = list(
        Judgment.objects.filter(item__study=study, item__excluded=False)
        .order_by("id")
        .values_list("id", "item_id", "rater_id", "preferred", "left_system", "time_ms")
    )
    assert table["id"][order].tolist() == [row[0] for row in expected]
    assert table["item_id"][order].tolist() == [row[1] for row in expected]
    assert table["rater_id"][order].tolist() == [row[2] for row in expected]
    assert table["code"][order].tolist() == [reports.CODES[row[3]] for row in expected]
    assert table["left"][order].tolist() == [reports.CODES[row[4]] for row in expected]
    assert table["time_ms"][order].tolist() == [-1 if r[5] is None else r[5] for r in expected]
    gold = set(Item.objects.filter(study=study, is_gold=True).values_list("id", flat=True))
    assert table["is_gold"][order].tolist() == [row[1] in gold for row in expected]

    votes, gold_votes = reports.fetch_votes(study)
    assert len(votes) + len(gold_votes) == len(expected)
    assert np.isnan(votes.seconds).sum() + np.isnan(gold_votes.seconds).sum() == 1
    assert (np.diff(np.concatenate([votes.item_ids, gold_votes.item_ids])) != 0).any()


@pytest.mark.django_db
def test_scores_verdicts_and_lengths_as_columns() -> None:
    study, items = voted_study()
    paired = paired_score_columns(study=study)
    scores = paired[("m", "1")]
    assert scores.item_ids.tolist() == [item.pk for item in items]
    assert scores.base.tolist() == [len(i.outputs.get(system="base").text) for i in items]
    summaries, judge = reports.judge_reads(study)
    assert judge.judge_id == "j" and summaries[0].n == len(items)
    assert judge.item_ids.tolist() == [item.pk for item in items]
    verdicts = [("tuned", "base", "tie")[item.pk % 3] for item in items]
    assert judge.codes.tolist() == [reports.CODES[verdict] for verdict in verdicts]
    lengths = reports.output_lengths(study)
    assert lengths.tuned.tolist() == [len(i.outputs.get(system="tuned").text) for i in items]
    with pytest.raises(KeyError):
        lengths.rows_of(np.array([items[-1].pk + 1_000]))


@pytest.mark.django_db
def test_output_length_is_stored_in_characters() -> None:
    study = make_study(items=1, overlap=1)
    output = Output.objects.filter(item__study=study).first()
    Output.objects.filter(pk=output.pk).update(text="héllo wörld 😀")
    output.refresh_from_db()
    assert output.text_chars == len("héllo wörld 😀") == 13


@pytest.mark.django_db
def test_report_of_a_study_without_votes() -> None:
    study = make_study(items=3, overlap=2)
    report = build_report(study=study, options=ReportOptions(n_resamples=50))
    assert report["judgments"] == 0 and report["win_rate"]["tuned"] is None
    assert report["agreement"]["krippendorff_alpha"] is None
    assert report["disagreements"] == [] and report["disagreements_total"] == 0


@pytest.mark.django_db
def test_prefetch_inside_a_transaction_reads_in_the_callers_thread() -> None:
    calls = []
    with transaction.atomic():
        prefetch = reports.Prefetch({"x": lambda: calls.append(threading.get_ident()) or 7})
        assert prefetch.executor is None
        assert prefetch.get("x") == 7
        prefetch.close()
    assert calls == [threading.get_ident()]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_prefetched_report_equals_the_sequential_one(monkeypatch) -> None:
    study, _ = voted_study(n_items=12)
    assert not connection.in_atomic_block
    probe = reports.Prefetch({"thread": threading.get_ident})
    assert probe.get("thread") != threading.get_ident()  # read on another thread
    probe.close()
    concurrent = build_report(study=study, options=ReportOptions(n_resamples=100))

    def sequential(self, reads) -> None:
        self.reads, self.futures, self.done, self.executor = reads, {}, {}, None

    monkeypatch.setattr(reports.Prefetch, "__init__", sequential)
    alone = build_report(study=study, options=ReportOptions(n_resamples=100))
    assert report_sha256(concurrent) == report_sha256(alone)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_failed_prefetch_is_read_again_in_the_callers_thread() -> None:
    main = threading.get_ident()

    def read() -> str:
        if threading.get_ident() != main:
            raise RuntimeError("connection refused")
        return "read here"

    prefetch = reports.Prefetch({"x": read})
    assert prefetch.executor is not None
    assert prefetch.get("x") == "read here"
    prefetch.close()
