"""The researcher's disagreement review: what each item shows, the filters, pagination, the
adjudication form with no preselected ruling, the JSON endpoint, and bounded queries."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotations import services
from annotations.models import Adjudication, AuditEvent, Item, Judgment
from scoring.models import JudgeVerdict
from scoring.review import ReviewFilters, disagreement_review
from tests.conftest import api_client_for
from tests.factories import BASE_MODEL, TUNED_MODEL, make_study, make_user

pytestmark = pytest.mark.django_db

JUDGE = "local:tiny-judge"


def judge_all(study, rater, prefer, *, limit: int | None = None, seconds: float = 2.0) -> int:
    """The rater judges what the queue serves (up to `limit` pairs), preferring
    `prefer(item)` ("base", "tuned" or "tie"), each with a rationale naming rater and item."""
    n = 0
    while (limit is None or n < limit) and (
        a := services.assignment_next(study=study, rater=rater)
    ) is not None:
        wanted = prefer(a.item)
        choice = "tie" if wanted == "tie" else ("1" if a.left_system == wanted else "2")
        services.judgment_submit(
            assignment_id=a.pk,
            rater=rater,
            choice=choice,
            rationale=f"{rater.username} on {a.item.external_id}",
            time_ms=int(seconds * 1000),
        )
        n += 1
    return n


def verdict(item, choice: str, *, judge_id: str = JUDGE, **raw) -> JudgeVerdict:
    p_tuned = {"tuned": 0.8, "base": 0.2, "tie": 0.5}[choice]
    return JudgeVerdict.objects.create(
        item=item,
        judge_id=judge_id,
        template="mtbench_pairwise",
        p_tuned=p_tuned,
        verdict=choice,
        raw={"p_first": {"tuned_first": p_tuned, "base_first": 1 - p_tuned}, **raw},
    )


@pytest.fixture
def review_study(researcher):
    """50 items, k = 3. Items 0-39 split 1:2 (base, tuned, tuned); 40-49 are unanimous for
    tuned. The judge says tuned on 0-4, base on 5-9 and 40-44. The third vote comes from r2
    for the first 25 pairs r2 is served and from r3 for the rest, so the rater filter has two
    disjoint sets to tell apart."""
    r0, r1, r2, r3 = raters = [make_user() for _ in range(4)]
    study = make_study(items=50, overlap=3, raters=raters, owner=researcher)
    items = list(study.items.order_by("id"))
    index = {item.pk: k for k, item in enumerate(items)}

    def split(preference):
        return lambda item: preference if index[item.pk] < 40 else "tuned"

    judge_all(study, r0, split("base"), seconds=1.5)
    judge_all(study, r1, split("tuned"), seconds=2.5)
    judge_all(study, r2, split("tuned"), limit=25, seconds=3.5)
    judge_all(study, r3, split("tuned"), seconds=4.5)
    for k in range(5):
        verdict(items[k], "tuned")
    for k in [*range(5, 10), *range(40, 45)]:
        verdict(items[k], "base")
    # A second judge with fewer verdicts: the review, like the report, follows the first.
    verdict(items[45], "base", judge_id="other-judge")
    first = JudgeVerdict.objects.get(item=items[5], judge_id=JUDGE)
    first.raw["rationale"] = "Response A skips the second half of the question."
    first.save()
    return study, items


def adjudication_forms(html: str) -> list[str]:
    return re.findall(r'<form method="post" class="adjudicate">.*?</form>', html, re.S)


def shown_items(html: str) -> list[str]:
    return re.findall(r'<section class="card review-item" id="item-\d+" data-item="([^"]+)"', html)


@pytest.fixture
def client(researcher) -> Client:
    client = Client()
    client.force_login(researcher)
    return client


def test_the_list_matches_the_reasons(review_study) -> None:
    study, items = review_study
    review = disagreement_review(study=study, per_page=100)

    assert review.total == review.total_unfiltered == 45
    assert review.judge_id == JUDGE
    assert review.reason_counts == {"raters_split": 40, "no_majority": 0, "judge_disagrees": 10}
    by_id = {row.item_id: row for row in review.items}
    assert by_id[items[5].external_id].reasons == ("raters_split", "judge_disagrees")
    assert by_id[items[40].external_id].reasons == ("judge_disagrees",)
    assert items[45].external_id not in by_id  # only the other judge disagrees there
    assert [row.item_id for row in review.items] == sorted(by_id)  # item (import) order


def test_an_item_shows_both_responses_votes_and_the_judge(review_study) -> None:
    study, items = review_study
    review = disagreement_review(
        study=study, filters=ReviewFilters(reason="judge_disagrees"), per_page=20
    )
    row = next(r for r in review.items if r.item_id == items[5].external_id)
    assert row.prompt == items[5].prompt
    assert row.base_text == "Base answer 5 from the first model."
    assert row.tuned_text == "Tuned answer 5, more complete and polite."
    assert (row.base_model, row.tuned_model) == (BASE_MODEL, TUNED_MODEL)
    assert row.votes == {"base": 1, "tuned": 2} and row.human_majority == "tuned"
    expected = Judgment.objects.filter(item=items[5]).order_by("created_at", "id")
    assert [(v.rater, v.preferred, v.rationale, v.time_ms) for v in row.judgments] == [
        (j.rater.username, j.preferred, j.rationale, j.time_ms) for j in expected
    ]
    assert row.judge.verdict == "base" and row.judge.p_tuned == pytest.approx(0.2)
    assert row.judge.rationale == "Response A skips the second half of the question."
    assert row.judge.evidence == [
        "Tuned shown first: P(first answer better) = 0.20",
        "Base shown first: P(first answer better) = 0.80",
    ]
    assert row.adjudication is None


def test_the_page_shows_everything_a_ruling_needs(review_study, client) -> None:
    study, items = review_study
    html = client.get(f"/studies/{study.slug}/disagreements/?reason=judge_disagrees").content
    html = html.decode()
    section = html[html.index(f'data-item="{items[5].external_id}"') :]
    section = section[: section.index("</section>")]
    assert f"Base · {BASE_MODEL}" in section and f"Tuned · {TUNED_MODEL}" in section
    assert "Base answer 5 from the first model." in section
    assert "Tuned answer 5, more complete and polite." in section
    for judgment in Judgment.objects.filter(item=items[5]).select_related("rater"):
        assert judgment.rater.username in section
        assert f"{judgment.rater.username} on {items[5].external_id}" in section
        assert f"{judgment.time_ms / 1000:.1f} s" in section
    assert "Judge: <strong>base</strong>" in section
    assert "Judge's rationale: Response A skips the second half of the question." in section
    assert "Tuned shown first: P(first answer better) = 0.20" in section
    # Without a stored rationale the page says so rather than inventing one.
    other = html[html.index(f'data-item="{items[6].external_id}"') :]
    assert "No written rationale stored" in other[: other.index("</section>")]


def test_no_ruling_is_preselected(review_study, client) -> None:
    study, _ = review_study
    html = client.get(f"/studies/{study.slug}/disagreements/").content.decode()
    forms = adjudication_forms(html)
    assert len(forms) == 20
    for form in forms:
        assert "checked" not in form and "selected" not in form and "<select" not in form
        radios = re.findall(r'<input type="radio" name="preference" value="(\w+)" required>', form)
        assert radios == ["base", "tuned", "tie", "both_bad"]


def test_a_post_without_a_ruling_is_refused_with_a_message(review_study, client) -> None:
    study, items = review_study
    response = client.post(
        f"/studies/{study.slug}/disagreements/",
        {"item_id": items[5].external_id, "rationale": "looks fine", "reason": "raters_split"},
        follow=True,
    )
    assert not Adjudication.objects.exists()
    assert not AuditEvent.objects.filter(action="adjudicated").exists()
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        f"Item {items[5].external_id} not adjudicated: choose a ruling (base, tuned, tie or "
        "both_bad): none is preselected."
    ]
    assert response.redirect_chain[-1][0].endswith("?reason=raters_split")


def test_adjudicating_records_audits_and_keeps_the_place(review_study, client, researcher):
    study, items = review_study
    item = items[41]
    response = client.post(
        f"/studies/{study.slug}/disagreements/",
        {
            "item_id": item.external_id,
            "preference": "base",
            "rationale": "the judge is right here",
            "reason": "judge_disagrees",
            "page": "1",
            "anchor": str(item.pk),
        },
    )
    assert response.status_code == 302
    assert response["Location"] == (
        f"/studies/{study.slug}/disagreements/?reason=judge_disagrees&page=1#item-{item.pk}"
    )
    adjudication = Adjudication.objects.get(item=item)
    assert (adjudication.preference, adjudication.decided_by) == ("base", researcher)
    event = AuditEvent.objects.get(action="adjudicated")
    assert (event.entity_id, event.after, event.actor) == (item.external_id, "base", researcher)

    html = client.get(f"/studies/{study.slug}/disagreements/?adjudicated=yes").content.decode()
    assert shown_items(html) == [item.external_id]
    assert "Adjudicated: base</strong> by " + researcher.username in html
    assert "checked" not in adjudication_forms(html)[0]  # a new ruling is chosen afresh too
    html = client.get(f"/studies/{study.slug}/disagreements/?adjudicated=no").content.decode()
    assert "44 items" in html


def test_filters(review_study, client) -> None:
    study, items = review_study
    url = f"/studies/{study.slug}/disagreements/"

    html = client.get(url, {"reason": "judge_disagrees"}).content.decode()
    expected = sorted(items[k].external_id for k in [*range(5, 10), *range(40, 45)])
    assert shown_items(html) == expected and "10 items" in html

    html = client.get(url, {"reason": "no_majority"}).content.decode()
    assert shown_items(html) == [] and "No disagreements match these filters." in html

    r3 = study.memberships.order_by("id")[3].rater
    judged_by_r3 = set(
        Judgment.objects.filter(rater=r3).values_list("item__external_id", flat=True)
    )
    disagreements = {items[k].external_id for k in [*range(40), *range(40, 45)]}
    wanted = sorted(judged_by_r3 & disagreements)
    assert 0 < len(wanted) < 45
    review = disagreement_review(
        study=study, filters=ReviewFilters(rater=r3.username), per_page=100
    )
    assert [row.item_id for row in review.items] == wanted
    html = client.get(url, {"rater": r3.username}).content.decode()
    assert f"{len(wanted)} item" in html
    assert shown_items(html) == wanted[:20]

    response = client.get(url, {"reason": "bogus"}, follow=True)
    assert "reason must be one of" in response.content.decode()
    assert len(shown_items(response.content.decode())) == 20  # falls back to no filter


def test_the_rater_filter_offers_each_rater_once(review_study, client) -> None:
    study, _ = review_study
    names = sorted(m.rater.username for m in study.memberships.all())
    review = disagreement_review(study=study, filters=ReviewFilters())
    assert review.raters == names
    html = client.get(f"/studies/{study.slug}/disagreements/").content.decode()
    for name in names:
        assert html.count(f'<option value="{name}"') == 1


def test_pagination(review_study, client) -> None:
    study, items = review_study
    url = f"/studies/{study.slug}/disagreements/"
    first = client.get(url).content.decode()
    assert "45 items · page 1 of 3" in first
    assert 'rel="next" href="?page=2"' in first
    third = client.get(url, {"page": 3}).content.decode()
    everything = sorted(items[k].external_id for k in range(45))
    assert shown_items(first) == everything[:20]
    assert shown_items(third) == everything[40:]
    assert 'rel="prev" href="?page=2"' in third and 'rel="next"' not in third
    # Out of range clamps to the last page; filters travel with the page links.
    assert shown_items(client.get(url, {"page": 99}).content.decode()) == everything[40:]
    split = client.get(url, {"reason": "raters_split", "page": 2}).content.decode()
    assert 'href="?reason=raters_split&amp;page=1"' in split


def test_queries_do_not_grow_with_items(review_study, django_assert_max_num_queries) -> None:
    study, _ = review_study
    small = make_study(items=4, overlap=2, raters=[make_user(), make_user()])
    judge_all(small, small.memberships.first().rater, lambda item: "base")
    judge_all(small, small.memberships.last().rater, lambda item: "tuned")
    verdict(small.items.first(), "tuned")

    def queries(target, **kwargs) -> int:
        with CaptureQueriesContext(connection) as captured:
            review = disagreement_review(study=target, **kwargs)
        assert review.items
        return len(captured)

    rater = study.memberships.first().rater.username
    counts = {
        queries(study),
        queries(study, page=3),
        queries(small),
        queries(study, filters=ReviewFilters(reason="raters_split", rater=rater)) - 1,
    }
    assert counts == {10}  # ten queries; the rater filter adds one
    with django_assert_max_num_queries(11):
        disagreement_review(study=study, filters=ReviewFilters(rater=rater), per_page=100)


def test_the_page_makes_as_many_queries_for_20_items_as_for_5(review_study, client) -> None:
    study, _ = review_study
    url = f"/studies/{study.slug}/disagreements/"
    client.get(url)  # warm the session

    def queries(**params) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url, params).status_code == 200
        return len(captured)

    assert queries(page=1) == queries(page=3) <= 16


def test_api_lists_the_same_page(review_study, researcher_api) -> None:
    study, items = review_study
    url = f"/api/v1/studies/{study.slug}/disagreements/"
    body = researcher_api.get(url, {"reason": "judge_disagrees", "per_page": 4}).json()
    assert (body["count"], body["page"], body["pages"], body["per_page"]) == (10, 1, 3, 4)
    assert body["total_unfiltered"] == 45 and body["judge_id"] == JUDGE
    first = body["results"][0]
    assert first["item_id"] == items[5].external_id
    assert first["base_text"] == "Base answer 5 from the first model."
    assert first["tuned_text"] == "Tuned answer 5, more complete and polite."
    assert first["reasons"] == ["raters_split", "judge_disagrees"]
    assert first["judge"]["rationale"] == "Response A skips the second half of the question."
    assert {v["time_ms"] for v in first["judgments"]} <= {1500, 2500, 3500, 4500}
    assert all(v["rationale"] for v in first["judgments"])
    assert first["adjudication"] is None

    last = researcher_api.get(url, {"reason": "judge_disagrees", "per_page": 4, "page": 3})
    assert [r["item_id"] for r in last.json()["results"]] == [
        items[43].external_id,
        items[44].external_id,
    ]
    assert researcher_api.get(url, {"reason": "bogus"}).status_code == 400
    assert researcher_api.get(url, {"page": "0"}).status_code == 400
    assert researcher_api.get(url, {"per_page": "101"}).status_code == 400
    missing = researcher_api.get("/api/v1/studies/no-such-study/disagreements/")
    assert missing.status_code == 404


def test_raters_cannot_open_the_review(review_study) -> None:
    study, _ = review_study
    rater = study.memberships.first().rater
    assert (
        api_client_for(rater).get(f"/api/v1/studies/{study.slug}/disagreements/").status_code == 403
    )
    client = Client()
    client.force_login(rater)
    assert client.get(f"/studies/{study.slug}/disagreements/").status_code == 403
    response = client.post(
        f"/studies/{study.slug}/disagreements/",
        {"item_id": Item.objects.first().external_id, "preference": "tuned", "rationale": "x"},
    )
    assert response.status_code == 403 and not Adjudication.objects.exists()
