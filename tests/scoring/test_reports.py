from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotations import services
from annotations.models import Assignment, Item, Judgment
from scoring.models import JudgeVerdict, OutputScore
from scoring.reports import ReportOptions, build_report, item_rows, preference_pairs, report_sha256
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db

CODE = {"base": 0, "tuned": 1, "tie": 2, "both_bad": 2}


def vote(study, rater, item, preferred: str, time_ms: int = 5000) -> None:
    """Casts `preferred` for `item` through the real queue and submit path."""
    membership_ok = study.memberships.filter(rater=rater).exists()
    if not membership_ok:
        services.raters_assign(study=study, usernames=[rater.username])
    Item.objects.filter(study=study).exclude(pk=item.pk).update(priority=0)
    Item.objects.filter(pk=item.pk).update(priority=100)
    a = services.assignment_next(study=study, rater=rater)
    assert a.item_id == item.pk
    choice = (
        "tie"
        if preferred == "tie"
        else "both_bad"
        if preferred == "both_bad"
        else ("1" if a.left_system == preferred else "2")
    )
    services.judgment_submit(assignment_id=a.pk, rater=rater, choice=choice, time_ms=time_ms)
    Item.objects.filter(pk=item.pk).update(priority=0)


PLAN = [  # per item: the three raters' preferences
    ("tuned", "tuned", "tuned"),
    ("tuned", "tuned", "base"),
    ("base", "base", "base"),
    ("tuned", "tie", "tuned"),
    ("tuned", "tuned", "tuned"),
    ("base", "tuned", "tie"),
    ("tuned", "tuned", "tuned"),
    ("tie", "tie", "tie"),
    ("tuned", "base", "tuned"),
    ("tuned", "tuned", "both_bad"),
]


@pytest.fixture
def voted_study():
    raters = [make_user(username=f"r{i}") for i in range(3)]
    study = make_study(items=len(PLAN), overlap=3, raters=raters)
    items = list(Item.objects.filter(study=study).order_by("id"))
    for item, prefs in zip(items, PLAN, strict=True):
        for rater, pref in zip(raters, prefs, strict=True):
            vote(study, rater, item, pref)
    return study, items, raters


def test_report_numbers_match_independent_computation(voted_study) -> None:
    study, items, raters = voted_study
    report = build_report(study=study, options=ReportOptions(n_resamples=200))
    votes = [p for prefs in PLAN for p in prefs]
    assert report["items"] == 10 and report["judgments"] == 30
    expected = (votes.count("tuned") + 0.5 * (votes.count("tie") + votes.count("both_bad"))) / 30
    assert report["win_rate"]["tuned"] == pytest.approx(expected)
    decisive = votes.count("tuned") + votes.count("base")
    assert report["win_rate"]["tuned_no_ties"] == pytest.approx(votes.count("tuned") / decisive)
    lo, hi = report["win_rate"]["ci95"]
    assert lo < report["win_rate"]["tuned"] < hi
    matrix = np.array([[CODE[prefs[r]] for prefs in PLAN] for r in range(3)], dtype=float)
    assert report["agreement"]["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(
            reliability_data=matrix, level_of_measurement="nominal", value_domain=[0, 1, 2]
        ),
        abs=1e-9,
    )
    assert {r["rater"] for r in report["raters"]} == {"r0", "r1", "r2"}
    assert report["votes"]["both_bad"] == 1
    split = {d["item_id"] for d in report["disagreements"]}
    assert items[5].external_id in split and items[0].external_id not in split
    # Made in draft by the factory: no design yet, and building the report plans nothing.
    assert report["decision"]["planned"] is False
    assert report["verdict"]["summary"]


def test_judge_human_agreement_with_and_without_ties(voted_study) -> None:
    study, items, _ = voted_study
    # Human majorities per PLAN: t t b t t (split) t tie t t(2 tuned + both_bad)
    judge = ["tuned", "base", "base", "tuned", "tuned", "tuned", "tuned", "tuned", "tie", "tuned"]
    for item, verdict in zip(items, judge, strict=True):
        JudgeVerdict.objects.create(
            item=item,
            judge_id="j1",
            template="t",
            p_tuned={"tuned": 0.9, "base": 0.1, "tie": 0.5}[verdict],
            verdict=verdict,
        )
    report = build_report(study=study, options=ReportOptions(n_resamples=200))
    jh = report["judge_human"]
    # Primary: the judge's verdict paired with each human vote, as humans are paired.
    pairs = agree = pairs_nt = agree_nt = 0
    hh_pairs = hh_agree = 0
    for prefs, verdict in zip(PLAN, judge, strict=True):
        coded = ["tie" if p == "both_bad" else p for p in prefs]
        for p in coded:
            pairs += 1
            agree += p == verdict
            if "tie" not in (p, verdict):
                pairs_nt += 1
                agree_nt += p == verdict
        for i in range(3):
            for j in range(i + 1, 3):
                hh_pairs += 1
                hh_agree += coded[i] == coded[j]
    pairwise = jh["pairwise"]
    assert jh["agreement"] == pytest.approx(agree / pairs)
    assert pairwise["judge_human"]["n_pairs"] == pairs == 30
    assert pairwise["judge_human_without_ties"]["agreement"] == pytest.approx(agree_nt / pairs_nt)
    assert jh["human_human_agreement"] == pytest.approx(hh_agree / hh_pairs)
    lo, hi = pairwise["difference"]["ci95"]
    assert lo <= pairwise["difference"]["value"] <= hi
    # Secondary: against the majority; all items but item 5 (split) have one -> 9 items.
    majority = jh["majority"]
    assert majority["n"] == 9 and "secondary" in majority["label"]
    # Items 0,2,3,4,6,9 agree; 1 (tuned vs base), 7 (tie vs tuned), 8 (tuned vs tie) differ.
    assert majority["agreement"] == pytest.approx(6 / 9)
    # Without ties (MT-Bench): drop items 7 and 8 -> 6 of 7.
    assert majority["agreement_non_tie"] == pytest.approx(6 / 7)
    assert sum(map(sum, majority["confusion"])) == 9


def test_adjudication_replaces_the_majority_and_is_shown(voted_study) -> None:
    study, items, _ = voted_study
    researcher = make_user("researcher")
    services.adjudication_record(
        study=study,
        external_id=items[5].external_id,
        preference="tuned",
        rationale="response 2 answers the question",
        user=researcher,
    )
    report = build_report(study=study, options=ReportOptions(n_resamples=0))
    row = next(d for d in report["disagreements"] if d["item_id"] == items[5].external_id)
    assert row["adjudication"]["preference"] == "tuned"
    assert row["adjudication"]["by"] == researcher.username
    rows = {r["item_id"]: r for r in item_rows(study=study)}
    assert (
        rows[items[5].external_id]["majority"] == "tuned"
        and rows[items[5].external_id]["adjudicated"]
    )


def test_flagged_raters_can_be_left_out(voted_study) -> None:
    study, items, raters = voted_study
    # r2 always answers "base" very fast on 10 extra items: flagged for time.
    study = services.study_update(study=study, min_time_ms=2000)
    report = build_report(study=study, options=ReportOptions(n_resamples=0))
    flagged = {r["rater"] for r in report["raters"] if r["flagged"]}
    Judgment.objects.filter(rater=raters[2]).update(time_ms=100)
    report = build_report(study=study, options=ReportOptions(n_resamples=0))
    flagged = {r["rater"] for r in report["raters"] if r["flagged"]}
    assert flagged == {"r2"}
    without = build_report(
        study=study, options=ReportOptions(n_resamples=0, exclude_flagged_raters=True)
    )
    assert without["judgments"] == 20
    assert without["options"]["excluded_raters"] == ["r2"]


def test_report_is_deterministic_and_hash_changes_with_evidence(voted_study) -> None:
    study, items, raters = voted_study
    first = build_report(study=study, options=ReportOptions(n_resamples=100))
    second = build_report(study=study, options=ReportOptions(n_resamples=100))
    assert report_sha256(first) == report_sha256(second)
    judgment = Judgment.objects.filter(item=items[0]).first()
    Judgment.objects.filter(pk=judgment.pk).update(preferred="base")
    assert report_sha256(
        build_report(study=study, options=ReportOptions(n_resamples=100))
    ) != report_sha256(first)


def test_query_count_does_not_grow_with_items() -> None:
    counts = []
    for n_items in (6, 30):
        raters = [make_user() for _ in range(3)]
        study = make_study(items=n_items, overlap=3, raters=raters)
        for rater in raters:
            while (a := services.assignment_next(study=study, rater=rater)) is not None:
                services.judgment_submit(assignment_id=a.pk, rater=rater, choice="1", time_ms=4000)
        for item in Item.objects.filter(study=study):
            for output in item.outputs.all():
                OutputScore.objects.create(
                    output=output,
                    item=item,
                    system=output.system,
                    metric="m",
                    version="1",
                    value=len(output.text),
                )
            JudgeVerdict.objects.create(
                item=item, judge_id="j", template="t", p_tuned=0.7, verdict="tuned"
            )
        with CaptureQueriesContext(connection) as ctx:
            build_report(study=study, options=ReportOptions(n_resamples=50))
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]
    assert counts[1] < 40


def test_dpo_pairs_from_the_human_majority(voted_study) -> None:
    study, items, _ = voted_study
    pairs = list(preference_pairs(study=study))
    # Majorities: tuned on 0,1,3,4,6,8,9; base on 2; tie on 7; split on 5 -> 8 pairs.
    assert len(pairs) == 8
    base_text = items[2].outputs.get(system="base").text
    assert any(p["chosen"] == base_text for p in pairs)
    assert set(pairs[0]) == {"prompt", "chosen", "rejected", "source"}
    JudgeVerdict.objects.create(
        item=items[5], judge_id="j", template="t", p_tuned=0.8, verdict="tuned"
    )
    assert len(list(preference_pairs(study=study, include_judge=True))) == 9
    assert Assignment.objects.count() == 30


def test_report_survives_raters_with_few_common_items() -> None:
    raters = [make_user() for _ in range(2)]
    study = make_study(items=3, overlap=2, raters=raters)
    for rater in raters:
        while (a := services.assignment_next(study=study, rater=rater)) is not None:
            services.judgment_submit(assignment_id=a.pk, rater=rater, choice="1", time_ms=3000)
    report = build_report(study=study, options=ReportOptions(n_resamples=20))
    assert report["judgments"] == 6
    assert report["agreement"]["cohen_kappa_mean"] is None
    assert report["disagreements_total"] == len(report["disagreements"])


def cast(study, rater, item, preferred: str) -> None:
    vote(study, rater, item, preferred)


def test_one_vote_gives_no_degenerate_interval_and_no_verdict() -> None:
    rater = make_user(username="solo")
    study = make_study(items=1, overlap=1, raters=[rater])
    cast(study, rater, study.items.get(), "tuned")
    report = build_report(study=study, options=ReportOptions(n_resamples=0))
    lo, hi = report["win_rate"]["ci95"]
    assert report["win_rate"]["tuned"] == 1.0 and lo < 0.6 and hi == pytest.approx(1.0)
    assert report["verdict"]["status"] == "not_decided" and report["verdict"]["level"] == "neutral"
    assert report["win_rate"]["gate"]["item"]["status"] == "undecided"


def test_four_wins_and_sixteen_ties_are_not_significant() -> None:
    rater = make_user(username="ties")
    study = make_study(items=20, overlap=1, raters=[rater])
    for index, item in enumerate(study.items.order_by("id")):
        cast(study, rater, item, "tuned" if index < 4 else "tie")
    report = build_report(study=study, options=ReportOptions(n_resamples=0))
    assert report["win_rate"]["p_value_exact"] == pytest.approx(0.125)
    assert report["win_rate"]["ci95"][0] <= 0.5
    assert report["verdict"]["status"] == "not_decided"


def test_summary_level_and_gate_tell_one_story() -> None:
    raters = [make_user(username=f"v{i}") for i in range(3)]
    study = make_study(items=30, overlap=3, raters=raters)
    for item in study.items.order_by("id"):
        for rater in raters:
            cast(study, rater, item, "tuned")
    report = build_report(study=study, options=ReportOptions(n_resamples=0))
    verdict, gate = report["verdict"], report["win_rate"]["gate"]["item"]
    # No sequential design (the factory opens the study directly): the interval decides.
    assert gate["status"] == "pass" and verdict["status"] == "tuned_preferred"
    assert verdict["level"] == "good" and verdict["summary"].startswith("The tuned model is")
    # The item, not the vote, is the unit: 90 unanimous votes on 30 items weigh as 30 items.
    assert report["win_rate"]["n_items"] == 30 and report["win_rate"]["design_effect"] >= 2.5


def test_a_rater_carrying_most_votes_is_warned_about() -> None:
    heavy, light = make_user(username="heavy"), make_user(username="light")
    study = make_study(items=12, overlap=1, raters=[heavy, light])
    items = list(study.items.order_by("id"))
    for index, item in enumerate(items):
        cast(study, heavy if index < 11 else light, item, "tuned" if index % 3 else "base")
    report = build_report(study=study, options=ReportOptions(n_resamples=0))
    assert report["win_rate"]["top_rater_share"] > 0.9
    assert any("rater" in w for w in report["win_rate"]["warnings"])
