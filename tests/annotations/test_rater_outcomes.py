"""The rater API says only what the server confirmed: idempotent submissions, one 409 code per
reason nothing was saved, undo within a minute, the rater's own counter, no caching, and rater
pages that name the study by its rater title and opaque id only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotations import services
from annotations.models import (
    NEUTRAL_RATER_TITLE,
    Assignment,
    AssignmentState,
    AuditEvent,
    Judgment,
)
from annotations.queue_rules import flagged_fast, min_reading_ms
from annotations.rendering import markdown_html
from annotations.selectors import judgment_export_rows, study_progress
from tests.conftest import api_client_for
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db


def next_pair(client: APIClient, study, **params) -> dict:
    query = "&".join(f"{k}={v}" for k, v in {"study": study.public_id, **params}.items())
    response = client.get(f"/api/v1/queue/next/?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def submit(client: APIClient, assignment: int, choice: str, key: str | None = None, **body):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(
        f"/api/v1/assignments/{assignment}/judgment/",
        {"choice": choice, **body},
        format="json",
        **headers,
    )


def progress(client: APIClient, study) -> dict:
    response = client.get(f"/api/v1/rate/{study.public_id}/progress/")
    assert response.status_code == 200, response.content
    return response.json()


# --- idempotency ---------------------------------------------------------------------------


def test_a_retry_with_the_same_key_gets_the_original_201_and_stores_once() -> None:
    rater = make_user()
    study = make_study(items=3, overlap=1, raters=[rater])
    client = api_client_for(rater)
    pair = next_pair(client, study)
    first = submit(client, pair["assignment"], "2", key="k-1", time_ms=5000)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    again = submit(client, pair["assignment"], "2", key="k-1", time_ms=6000)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    stored = Judgment.objects.get(rater=rater)
    assert (stored.choice, stored.idempotency_key, stored.time_ms) == ("right", "k-1", 5000)
    assert Judgment.objects.filter(rater=rater).count() == 1
    assert progress(client, study)["judged_by_me"] == 1


def test_the_same_key_with_another_choice_is_a_409_that_says_so() -> None:
    rater = make_user()
    study = make_study(items=2, overlap=1, raters=[rater])
    client = api_client_for(rater)
    pair = next_pair(client, study)
    assert submit(client, pair["assignment"], "1", key="k-2").status_code == 201
    changed = submit(client, pair["assignment"], "tie", key="k-2")
    assert changed.status_code == 409
    body = changed.json()
    assert body["code"] == "key_reused"
    assert "changed choice was not saved" in body["detail"]
    assert body["errors"] == {"saved_choice": "1"}
    assert list(Judgment.objects.filter(rater=rater).values_list("choice", flat=True)) == ["left"]


def test_without_a_key_a_second_submission_is_the_old_conflict() -> None:
    rater = make_user()
    study = make_study(items=2, overlap=1, raters=[rater])
    client = api_client_for(rater)
    pair = next_pair(client, study)
    assert submit(client, pair["assignment"], "1").status_code == 201
    again = submit(client, pair["assignment"], "1")
    assert again.status_code == 409
    assert again.json()["code"] == "already_judged"
    assert again.json()["errors"] == {"saved_choice": "1"}
    # A key that the stored judgment does not carry is no retry of it either.
    assert submit(client, pair["assignment"], "1", key="other").json()["code"] == "already_judged"
    assert Judgment.objects.filter(rater=rater).count() == 1


def test_a_key_used_for_another_pair_saves_nothing() -> None:
    rater = make_user()
    study = make_study(items=3, overlap=1, raters=[rater])
    client = api_client_for(rater)
    first = next_pair(client, study)
    assert submit(client, first["assignment"], "1", key="same").status_code == 201
    second = next_pair(client, study)
    response = submit(client, second["assignment"], "1", key="same")
    assert response.status_code == 409
    assert Judgment.objects.filter(rater=rater).count() == 1
    assert Assignment.objects.get(pk=second["assignment"]).state == AssignmentState.LEASED


def test_keys_are_per_rater() -> None:
    one, two = make_user(), make_user()
    study = make_study(items=2, overlap=2, raters=[one, two])
    for user in (one, two):
        client = api_client_for(user)
        pair = next_pair(client, study)
        assert submit(client, pair["assignment"], "1", key="shared-key").status_code == 201
    assert Judgment.objects.filter(idempotency_key="shared-key").count() == 2


# --- why nothing was saved -----------------------------------------------------------------


def test_a_lost_lease_on_an_item_others_completed_is_lease_lost() -> None:
    slow, fast = make_user(), make_user()
    study = make_study(items=1, overlap=1, raters=[slow, fast])
    slow_client = api_client_for(slow)
    stale = next_pair(slow_client, study)
    Assignment.objects.filter(pk=stale["assignment"]).update(
        leased_until=timezone.now() - timedelta(minutes=1)
    )
    fast_client = api_client_for(fast)
    taken = next_pair(fast_client, study)
    assert submit(fast_client, taken["assignment"], "2").status_code == 201
    response = submit(slow_client, stale["assignment"], "1", key="late")
    assert response.status_code == 409
    assert response.json()["code"] == "lease_lost"
    assert "not saved" in response.json()["detail"]
    assert not Judgment.objects.filter(rater=slow).exists()
    counts = progress(slow_client, study)
    assert (counts["judged_by_me"], counts["left_for_me"], counts["can_judge"]) == (0, 0, 0)


def test_a_study_closed_mid_session_is_study_closed_and_saves_nothing() -> None:
    rater = make_user()
    study = make_study(items=2, overlap=1, raters=[rater])
    client = api_client_for(rater)
    pair = next_pair(client, study)
    services.study_update(study=study, status="closed")
    response = submit(client, pair["assignment"], "1", key="k")
    assert response.status_code == 409
    assert response.json()["code"] == "study_closed"
    assert not Judgment.objects.exists()
    assert client.get(f"/api/v1/queue/next/?study={study.public_id}").json()["code"] == (
        "study_closed"
    )
    assert progress(client, study)["status"] == "closed"


def test_a_retry_of_a_judgment_saved_before_the_study_closed_still_gets_its_201() -> None:
    rater = make_user()
    study = make_study(items=2, overlap=1, raters=[rater])
    client = api_client_for(rater)
    pair = next_pair(client, study)
    first = submit(client, pair["assignment"], "1", key="before-close")
    services.study_update(study=study, status="closed")
    again = submit(client, pair["assignment"], "1", key="before-close")
    assert again.status_code == 201 and again.json() == first.json()


def test_a_skipped_pair_is_skipped() -> None:
    rater = make_user()
    study = make_study(items=2, overlap=1, raters=[rater])
    client = api_client_for(rater)
    pair = next_pair(client, study)
    client.post(f"/api/v1/assignments/{pair['assignment']}/skip/")
    assert submit(client, pair["assignment"], "1").json()["code"] == "skipped"


# --- undo ----------------------------------------------------------------------------------


def test_undo_within_a_minute_gives_the_pair_back_and_keeps_the_judgment_in_the_audit() -> None:
    rater = make_user()
    study = make_study(items=3, overlap=1, raters=[rater])
    client = api_client_for(rater)
    pair = next_pair(client, study)
    assert submit(client, pair["assignment"], "1", key="u-1", rationale="why", time_ms=4000)
    judgment = Judgment.objects.get(rater=rater)
    assert progress(client, study)["judged_by_me"] == 1

    response = client.delete(f"/api/v1/assignments/{pair['assignment']}/judgment/")
    assert response.status_code == 200, response.content
    assert response["Cache-Control"].count("no-store") == 1

    # Gone from every reader: statistics, exports, progress, the queue's counts ...
    assert not Judgment.objects.exists()
    assert list(judgment_export_rows(study=study)) == []
    assert study_progress(study=study).judgments == 0
    assert progress(client, study)["judged_by_me"] == 0
    # ... kept whole in the audit log.
    event = AuditEvent.objects.get(entity="judgment", action="withdrawn")
    assert event.entity_id == str(judgment.pk) and event.actor == rater
    assert event.details["choice"] == "left" and event.details["rationale"] == "why"
    assert event.details["preferred"] == judgment.preferred
    assert event.details["time_ms"] == 4000 and event.details["idempotency_key"] == "u-1"
    assert event.details["withdrawn_at"] >= event.details["created_at"]
    # The pair is the rater's again (a live lease), and the queue gives it back first.
    assignment = Assignment.objects.get(pk=pair["assignment"])
    assert assignment.state == AssignmentState.LEASED and assignment.leased_until > timezone.now()
    again = next_pair(client, study)
    assert again["assignment"] == pair["assignment"]
    assert again["responses"] == pair["responses"]
    assert submit(client, pair["assignment"], "tie", key="u-2").status_code == 201
    assert Judgment.objects.get(rater=rater).choice == "tie"


def test_undo_after_a_minute_or_in_a_closed_study_is_refused() -> None:
    rater = make_user()
    study = make_study(items=2, overlap=1, raters=[rater])
    client = api_client_for(rater)
    pair = next_pair(client, study)
    submit(client, pair["assignment"], "1")
    Judgment.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    late = client.delete(f"/api/v1/assignments/{pair['assignment']}/judgment/")
    assert late.status_code == 409 and late.json()["code"] == "withdraw_refused"
    Judgment.objects.update(created_at=timezone.now())
    services.study_update(study=study, status="closed")
    closed = client.delete(f"/api/v1/assignments/{pair['assignment']}/judgment/")
    assert closed.status_code == 409 and "closed" in closed.json()["detail"]
    assert Judgment.objects.count() == 1
    assert not AuditEvent.objects.filter(entity="judgment").exists()


def test_undo_of_nothing_or_of_someone_elses_pair_is_refused() -> None:
    rater, other = make_user(), make_user()
    study = make_study(items=2, overlap=2, raters=[rater, other])
    client = api_client_for(rater)
    pair = next_pair(client, study)
    nothing = client.delete(f"/api/v1/assignments/{pair['assignment']}/judgment/")
    assert nothing.status_code == 409
    submit(client, pair["assignment"], "1")
    stranger = api_client_for(other).delete(f"/api/v1/assignments/{pair['assignment']}/judgment/")
    assert stranger.status_code == 404
    assert Judgment.objects.count() == 1


# --- minimum reading time ------------------------------------------------------------------


def test_minimum_reading_time_defaults_from_the_length_and_only_flags() -> None:
    assert min_reading_ms(min_time_ms=None, text_chars=0) == 1_000
    assert min_reading_ms(min_time_ms=None, text_chars=11_000) == 1_000 + 15 * 110
    assert min_reading_ms(min_time_ms=0, text_chars=11_000) == 0
    assert min_reading_ms(min_time_ms=2_500, text_chars=11_000) == 2_500
    assert flagged_fast(time_ms=999, threshold_ms=1_000)
    assert not flagged_fast(time_ms=1_000, threshold_ms=1_000)
    assert not flagged_fast(time_ms=10, threshold_ms=0)
    assert not flagged_fast(time_ms=None, threshold_ms=1_000)


@pytest.mark.parametrize(
    ("min_time_ms", "time_ms", "flagged"),
    [(None, 900, True), (None, 1_500, False), (0, 25, False), (3_000, 2_000, True)],
)
def test_fast_judgments_are_stored_and_flagged(min_time_ms, time_ms, flagged) -> None:
    rater = make_user()
    study = make_study(items=1, overlap=1, raters=[rater], min_time_ms=min_time_ms)
    client = api_client_for(rater)
    pair = next_pair(client, study)
    chars = sum(len(r["text"]) for r in pair["responses"])
    assert chars < 100  # the factory's texts: the automatic threshold is 1 s
    response = submit(client, pair["assignment"], "1", time_ms=time_ms)
    assert response.status_code == 201
    assert Judgment.objects.get(rater=rater).flagged_fast is flagged


# --- the rater's counter, titles and URLs --------------------------------------------------


def test_the_counter_is_judged_by_me_of_what_i_can_judge() -> None:
    rater, other = make_user(), make_user()
    study = make_study(items=5, overlap=1, raters=[rater, other])
    client, other_client = api_client_for(rater), api_client_for(other)
    assert progress(client, study)["judged_by_me"] == 0
    assert progress(client, study)["can_judge"] == 5
    pair = next_pair(client, study)
    submit(client, pair["assignment"], "1")
    # Another rater completes an item (k = 1): it is no longer the rater's to judge.
    taken = next_pair(other_client, study)
    submit(other_client, taken["assignment"], "2")
    # A skipped item is not theirs either.
    skipped = next_pair(client, study)
    client.post(f"/api/v1/assignments/{skipped['assignment']}/skip/")
    counts = progress(client, study)
    assert (counts["judged_by_me"], counts["can_judge"], counts["left_for_me"]) == (1, 3, 2)
    assert counts["title"] == NEUTRAL_RATER_TITLE
    assert str(study.public_id) == counts["study"]


def test_rater_responses_and_pages_are_never_cached() -> None:
    rater = make_user()
    study = make_study(items=1, overlap=1, raters=[rater])
    client = api_client_for(rater)
    responses = [
        client.get(f"/api/v1/queue/next/?study={study.public_id}"),
        client.get("/api/v1/me/studies/"),
        client.get(f"/api/v1/rate/{study.public_id}/progress/"),
    ]
    pair = responses[0].json()
    responses.append(submit(client, pair["assignment"], "1", key="c"))
    responses.append(submit(client, pair["assignment"], "2", key="c"))  # a 409
    responses.append(client.get(f"/api/v1/queue/next/?study={study.public_id}"))  # a 204
    responses.append(client.post("/api/v1/assignments/999999/renew/"))  # a 404
    html = APIClient()
    html.force_login(rater)
    responses += [html.get("/rate/"), html.get(f"/rate/{study.public_id}/")]
    assert [r.status_code for r in responses] == [200, 200, 200, 201, 409, 204, 404, 200, 200]
    for response in responses:
        assert "no-store" in response["Cache-Control"], response


def test_rater_pages_show_the_rater_title_and_an_opaque_id_only() -> None:
    rater = make_user()
    study = make_study(
        items=2,
        overlap=1,
        raters=[rater],
        slug="run-llama3-8b-sft-0042",
        rater_title="Helpfulness of answers",
    )
    html = APIClient()
    html.force_login(rater)
    home = html.get("/rate/").content.decode()
    assert "Helpfulness of answers" in home and f"/rate/{study.public_id}/" in home
    page = html.get(f"/rate/{study.public_id}/").content.decode()
    assert "<title>Helpfulness of answers</title>" in page
    for body in (home, page):
        assert "llama3" not in body and "Test study" not in body
    # An old link by slug redirects to the opaque URL; researcher URLs keep the slug.
    old = html.get(f"/rate/{study.slug}/")
    assert old.status_code == 302 and old["Location"] == f"/rate/{study.public_id}/"
    studies = api_client_for(rater).get("/api/v1/me/studies/").json()
    assert studies == [
        {
            "study": str(study.public_id),
            "title": "Helpfulness of answers",
            "instructions": "",
            "status": "open",
            "judged_by_me": 0,
            "can_judge": 2,
            "left_for_me": 2,
            # Crowd participants' fields; null for a rater who joined otherwise.
            "item_cap": None,
            "completion_code": None,
        }
    ]
    pair = next_pair(api_client_for(rater), study)
    assert pair["study"] == str(study.public_id) and pair["title"] == "Helpfulness of answers"
    researcher = make_user("researcher")
    desk = APIClient()
    desk.force_login(researcher)
    assert desk.get(f"/studies/{study.slug}/").status_code == 200


def test_a_study_without_a_rater_title_gets_the_neutral_one() -> None:
    rater = make_user()
    study = make_study(items=1, overlap=1, raters=[rater], slug="run-7f3a")
    html = APIClient()
    html.force_login(rater)
    page = html.get(f"/rate/{study.public_id}/").content.decode()
    assert f"<title>{NEUTRAL_RATER_TITLE}</title>" in page and "run-7f3a" not in page


def test_start_rating_shows_only_where_something_is_left_and_says_why_not() -> None:
    rater, other = make_user(), make_user()
    full = make_study(items=1, overlap=1, raters=[rater, other], rater_title="Full one")
    closed = make_study(items=1, overlap=1, raters=[rater], rater_title="Closed one")
    services.study_update(study=closed, status="closed")
    open_one = make_study(items=1, overlap=1, raters=[rater], rater_title="Open one")
    other_client = api_client_for(other)
    pair = next_pair(other_client, full)
    submit(other_client, pair["assignment"], "1")
    html = APIClient()
    html.force_login(rater)
    home = html.get("/rate/").content.decode()
    assert home.count("Start rating") == 1
    assert f"/rate/{open_one.public_id}/" in home
    assert f"/rate/{full.public_id}/" not in home and f"/rate/{closed.public_id}/" not in home
    assert "Nothing left for you" in home and "Closed for rating" in home


# --- display -------------------------------------------------------------------------------


def test_markdown_is_rendered_safely_and_alike_for_both_slots() -> None:
    text = (
        "# Title\n\n| a | b |\n|:-|-:|\n| 1 | 2 |\n\n- *one* **two** ~~three~~\n\n"
        '<script>alert(1)</script><img src=x onerror="alert(2)">\n\n'
        "[click](javascript:alert(3)) ![pixel](https://tracker.example/p.png)\n\n"
        "```python\nif a < b:\n    pass\n```\n"
    )
    html = markdown_html(text)
    for tag in ("<h3>", "<table>", '<th style="text-align:left">', "<ul>", "<em>one</em>"):
        assert tag in html
    assert "<strong>two</strong>" in html and "<s>three</s>" in html
    assert '<code class="language-python">if a &lt; b:' in html
    assert "<script" not in html and "<img" not in html and "<a " not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "javascript:alert(3)" in html  # shown as text, never a link

    rater = make_user()
    study = make_study(items=1, overlap=1, raters=[rater])
    pair = next_pair(api_client_for(rater), study, render="html")
    assert pair["prompt_html"] == markdown_html(pair["prompt"])
    assert [r["html"] for r in pair["responses"]] == [
        markdown_html(r["text"]) for r in pair["responses"]
    ]
    plain = next_pair(api_client_for(rater), study)
    assert plain["prompt_html"] is None and "html" not in plain["responses"][0]
