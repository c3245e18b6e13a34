"""In real Chromium: the rating page says only what the server confirmed. For each path where
a vote can be lost, doubled or replayed, what the page says (counter, message) is checked
against what the database holds.

Same harness as test_browser_rating.py (its fixtures come through conftest.py): Debian's chromium, and a
wait for a quiet page before each key press (pytest-django's in-memory SQLite shares one
connection between the live server's threads).
"""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from annotations import services
from annotations.models import Assignment, AssignmentState, AuditEvent, Judgment
from tests.browser.test_browser_rating import (
    PASSWORD,
    READ_S,
    login,
    open_rating_page,
    wait_for_pair,
    wait_for_quiet,
)
from tests.factories import make_study, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

JUDGMENT_URL = re.compile(r"/api/v1/assignments/\d+/judgment/$")


@pytest.fixture
def rater(transactional_db):
    return make_user("rater", username="browser-rater", password=PASSWORD)


def counter(page) -> tuple[int, int]:
    """The page's counter, "12 of 200 for you", as (12, 200)."""
    text = page.text_content("#progress") or ""
    match = re.fullmatch(r"(\d+) of (\d+) for you", text.strip())
    assert match, f"counter reads {text!r}"
    return int(match[1]), int(match[2])


def wait_for_counter(page, judged: int) -> None:
    page.wait_for_function(
        "(n) => (document.getElementById('progress').textContent || '').startsWith(n + ' of ')",
        arg=judged,
    )


def prompt_of(page) -> str:
    return page.text_content("#prompt").strip()


def press_after_reading(page, key: str) -> None:
    wait_for_quiet(page)
    time.sleep(READ_S)
    page.keyboard.press(key)


def wait_for_new_pair(page, previous: str) -> None:
    page.wait_for_function(
        """(previous) => !document.getElementById('done').hidden
            || document.getElementById('prompt').textContent.trim() !== previous""",
        arg=previous,
    )
    wait_for_quiet(page)


def notice(page) -> str:
    return page.text_content("#notice") or ""


def start(page, live_server, rater, study) -> None:
    login(page, live_server, rater.username)
    open_rating_page(page, live_server, study)
    wait_for_counter(page, 0)


def test_a_lost_lease_says_not_saved_and_does_not_count(page, live_server, rater):
    other = make_user("rater")
    study = make_study(items=2, overlap=1, raters=[rater, other])
    start(page, live_server, rater, study)
    # The pair on screen is the rater's first lease (the second is the prefetched one).
    assignment = Assignment.objects.filter(rater=rater).order_by("created_at", "id").first().pk
    # The lease runs out while the rater reads, and another rater completes the item (k = 1).
    Assignment.objects.filter(pk=assignment).update(
        leased_until=timezone.now() - timedelta(minutes=1)
    )
    taken = services.assignment_next(study=study, rater=other)
    assert taken.pk != assignment and taken.item_id == Assignment.objects.get(pk=assignment).item_id
    services.judgment_submit(assignment_id=taken.pk, rater=other, choice="2")

    before = prompt_of(page)
    press_after_reading(page, "1")
    wait_for_new_pair(page, before)
    assert "Not saved" in notice(page) and "other raters completed it" in notice(page)
    assert not Judgment.objects.filter(rater=rater).exists()
    assert counter(page) == (0, 1)
    assert page.js_errors == []


def test_a_study_closed_mid_session_says_so_and_counts_nothing(page, live_server, rater):
    study = make_study(items=3, overlap=1, raters=[rater])
    start(page, live_server, rater, study)
    services.study_update(study=study, status="closed")
    press_after_reading(page, "1")
    page.wait_for_selector("#done", state="visible")
    wait_for_quiet(page)
    assert "Not saved" in notice(page) and "closed" in notice(page)
    assert "closed for rating" in page.text_content("#done-reason")
    assert page.is_hidden("#pair")
    assert not Judgment.objects.exists()
    assert counter(page)[0] == 0 == Judgment.objects.filter(rater=rater).count()


def test_back_and_forward_never_replay_a_judged_pair(page, live_server, rater):
    study = make_study(items=3, overlap=1, raters=[rater])
    start(page, live_server, rater, study)
    judged_prompt = prompt_of(page)
    press_after_reading(page, "1")
    wait_for_new_pair(page, judged_prompt)
    wait_for_counter(page, 1)

    page.goto(f"{live_server.url}/rate/")
    page.go_back()
    wait_for_pair(page)
    wait_for_counter(page, 1)
    assert prompt_of(page) != judged_prompt
    page.go_forward()
    page.wait_for_url(f"{live_server.url}/rate/")
    page.go_back()
    wait_for_pair(page)
    assert prompt_of(page) != judged_prompt

    # The next key press judges the pair on screen, not the one judged before.
    shown = prompt_of(page)
    press_after_reading(page, "2")
    wait_for_new_pair(page, shown)
    wait_for_counter(page, 2)
    judgments = Judgment.objects.filter(rater=rater)
    assert judgments.count() == 2 == counter(page)[0]
    assert len({j.item_id for j in judgments}) == 2
    assert shown in {j.item.prompt for j in judgments}
    assert page.js_errors == []


def test_a_double_key_press_judges_one_pair(page, live_server, rater):
    study = make_study(items=3, overlap=1, raters=[rater])
    start(page, live_server, rater, study)
    first = prompt_of(page)
    wait_for_quiet(page)
    time.sleep(READ_S)
    page.keyboard.press("1")
    time.sleep(0.03)
    page.keyboard.press("1")
    wait_for_new_pair(page, first)
    # A key pressed right as the next pair paints is ignored too.
    page.keyboard.press("2")
    time.sleep(0.5)
    wait_for_quiet(page)
    assert Judgment.objects.filter(rater=rater).count() == 1
    assert counter(page) == (1, 3)
    assert prompt_of(page) != first
    assert Assignment.objects.filter(rater=rater, state=AssignmentState.JUDGED).count() == 1


def test_a_lost_response_is_retried_with_the_same_key_and_counts_once(page, live_server, rater):
    study = make_study(items=3, overlap=1, raters=[rater])
    start(page, live_server, rater, study)

    def store_then_drop(route):
        route.fetch()  # the server stores the judgment ...
        route.abort()  # ... and its answer never reaches the page

    page.route(JUDGMENT_URL, store_then_drop)
    first = prompt_of(page)
    press_after_reading(page, "1")
    page.wait_for_selector("#error", state="visible")
    wait_for_quiet(page)
    assert "not confirmed" in page.text_content("#error")
    assert Judgment.objects.filter(rater=rater).count() == 1
    assert counter(page) == (0, 3)  # the page does not claim what it did not hear
    assert prompt_of(page) == first

    page.unroute(JUDGMENT_URL)
    page.keyboard.press("1")
    wait_for_new_pair(page, first)
    wait_for_counter(page, 1)
    assert "Saved" in notice(page)
    assert Judgment.objects.filter(rater=rater).count() == 1 == counter(page)[0]

    # A changed choice on the retry is explained, and the stored choice stays.
    page.route(JUDGMENT_URL, store_then_drop)
    second = prompt_of(page)
    press_after_reading(page, "3")  # tie: stored, answer dropped
    page.wait_for_selector("#error", state="visible")
    wait_for_quiet(page)
    page.unroute(JUDGMENT_URL)
    page.keyboard.press("4")  # the retry carries the same key with another choice
    wait_for_new_pair(page, second)
    wait_for_counter(page, 2)
    assert "changed choice was not saved" in notice(page)
    choices = list(
        Judgment.objects.filter(rater=rater).order_by("id").values_list("choice", flat=True)
    )
    assert choices == ["left", "tie"]
    assert counter(page)[0] == 2
    assert page.js_errors == []


def test_undo_brings_the_pair_back_and_the_counter_follows(page, live_server, rater):
    study = make_study(items=3, overlap=1, raters=[rater])
    start(page, live_server, rater, study)
    first = prompt_of(page)
    press_after_reading(page, "1")
    wait_for_new_pair(page, first)
    wait_for_counter(page, 1)
    assert Judgment.objects.filter(rater=rater).count() == 1

    page.keyboard.press("u")
    page.wait_for_function(
        "(p) => document.getElementById('prompt').textContent.trim() === p", arg=first
    )
    wait_for_counter(page, 0)
    wait_for_quiet(page)
    assert "Undone" in notice(page)
    assert not Judgment.objects.filter(rater=rater).exists()
    assert AuditEvent.objects.filter(entity="judgment", action="withdrawn").count() == 1

    press_after_reading(page, "2")
    wait_for_new_pair(page, first)
    wait_for_counter(page, 1)
    stored = Judgment.objects.get(rater=rater)
    assert stored.choice == "right" and stored.item.prompt == first
    assert counter(page) == (1, 3)
    assert page.js_errors == []


def test_long_outputs_scroll_in_their_panes_and_the_vote_bar_stays_on_screen(
    page, live_server, rater
):
    from annotations.importers import parse_jsonl
    from tests.factories import jsonl_bytes

    study = services.study_create(
        slug="long-study", name="Long", task_type="generation", status="open",
        overlap=1, rater_title="Long answers",
    )  # fmt: skip
    long_text = "\n\n".join(f"Paragraph {i}: " + "word " * 40 for i in range(55))
    assert len(long_text) > 11_000
    record = {"id": "long", "prompt": "Explain.", "base": long_text, "tuned": "Short answer."}
    services.items_import(
        study=study, parsed=parse_jsonl(jsonl_bytes([record]), file="l.jsonl"), source="l.jsonl"
    )
    services.raters_assign(study=study, usernames=[rater.username])
    start(page, live_server, rater, study)
    for width, height in [(1280, 900), (390, 844)]:
        page.set_viewport_size({"width": width, "height": height})
        if os.environ.get("BROWSER_SCREENSHOTS"):
            shot = Path(os.environ["BROWSER_SCREENSHOTS"]) / f"rate-long-{width}.png"
            page.screenshot(path=str(shot))
        box = page.locator("button[data-choice='1']").bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, (
            width,
            box,
        )
        one = page.locator("article.response").nth(0).bounding_box()
        two = page.locator("article.response").nth(1).bounding_box()
        assert abs(one["height"] - two["height"]) < 1
        if width > 760:
            assert one["y"] == two["y"]  # side by side
        else:
            assert two["y"] > one["y"]  # one column
    # The long output scrolls inside its own pane, whichever slot it was drawn into.
    assert page.evaluate(
        "(() => [...document.querySelectorAll('.response .body')]"
        ".some((b) => b.scrollHeight > b.clientHeight))()"
    )
    assert page.text_content("title") == "Long answers"
    assert "New pair" in page.text_content("#announce")
    assert page.get_attribute("#announce", "aria-live") == "polite"
