"""In real Chromium: raters come in from the browser. A researcher makes an invite link and a
new person uses it in another browser context; a crowd participant arrives with a Prolific id,
judges their pairs, gets the completion code, and the researcher's judgments export names the
participant id. What the pages say is checked against the database.

Same harness as test_browser_rating.py (fixtures through conftest.py)."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path

import pytest

from annotations import services
from annotations.models import Judgment, StudyRater
from tests.browser.test_browser_rating import (
    INIT_SCRIPT,
    PASSWORD,
    READ_S,
    TIMEOUT_MS,
    assert_blinded,
    login,
    wait_for_pair,
    wait_for_quiet,
)
from tests.factories import make_study, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "lantern-orbit-5512"


def fresh_page(browser):
    """A page in a browser context of its own: another person on another machine."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return context, page


def judge_and_wait(page, key: str) -> None:
    """Presses a choice after reading and waits until the server's answer is on the page."""
    prompt = page.text_content("#prompt")
    wait_for_quiet(page)
    time.sleep(READ_S)
    page.keyboard.press(key)
    page.wait_for_function(
        """(previous) => !document.getElementById('done').hidden
            || document.getElementById('prompt').textContent !== previous""",
        arg=prompt,
    )
    wait_for_quiet(page)


def test_a_researchers_invite_link_brings_a_new_rater_to_a_pair(browser, page, live_server):
    researcher = make_user("researcher", username="browser-researcher", password=PASSWORD)
    study = make_study(items=3, overlap=1, owner=researcher, rater_title="Helpful answers")

    login(page, live_server, researcher.username)
    page.goto(f"{live_server.url}/studies/{study.slug}/")
    page.click("text=Raters, invite links and crowd links")
    page.click("#invites button[type=submit]")
    link = page.input_value("#new-links input.invite-link")
    assert link.startswith(f"{live_server.url}/invite/")

    context, newcomer = fresh_page(browser)
    try:
        newcomer.goto(link)
        assert "Helpful answers" in newcomer.text_content("h1")
        newcomer.fill("input[name=username]", "invited-rater")
        newcomer.fill("input[name=password]", NEW_PASSWORD)
        newcomer.fill("input[name=password_again]", NEW_PASSWORD)
        newcomer.click("#invite-signup button[type=submit]")
        newcomer.wait_for_url(f"{live_server.url}/rate/{study.public_id}/")
        wait_for_pair(newcomer)
        assert_blinded(newcomer)
        judge_and_wait(newcomer, "1")
        assert newcomer.text_content("#notice").startswith("Saved:")
        newcomer.wait_for_function(
            "(document.getElementById('progress').textContent || '').startsWith('1 of ')"
        )
        assert newcomer.js_errors == []
    finally:
        context.close()

    rater = StudyRater.objects.get(study=study, rater__username="invited-rater").rater
    assert rater.check_password(NEW_PASSWORD)
    assert Judgment.objects.filter(rater=rater).count() == 1
    page.goto(f"{live_server.url}/studies/{study.slug}/raters/")
    assert re.match(r"accepted by invited-rater \d{4}-", page.text_content(".invite-state"))


@pytest.mark.usefixtures("exports_in_process")
def test_a_crowd_participant_rates_their_pairs_and_gets_the_completion_code(
    browser, page, live_server
):
    researcher = make_user("researcher", username="browser-researcher", password=PASSWORD)
    study = make_study(items=4, overlap=1, owner=researcher)
    link = services.crowd_link_create(
        study=study, actor=researcher, items_per_participant=2, completion_code="PAID-7Q2"
    )
    participant_id = "60f1c0ffee0123456789abcd"

    context, participant = fresh_page(browser)
    try:
        participant.goto(f"{live_server.url}/crowd/{link.token}/?PROLIFIC_PID={participant_id}")
        participant.click("#crowd-start button[type=submit]")
        participant.wait_for_url(f"{live_server.url}/rate/{study.public_id}/")
        wait_for_pair(participant)
        assert participant.is_hidden("#completion")
        judge_and_wait(participant, "1")
        assert participant.is_hidden("#completion")  # one of two: not done
        judge_and_wait(participant, "2")
        participant.wait_for_selector("#completion", state="visible")
        assert participant.text_content("#completion-code") == "PAID-7Q2"
        assert participant.text_content("#progress") == "2 of 2 for you"
        assert participant.js_errors == []
    finally:
        context.close()

    account = StudyRater.objects.get(participant_id=participant_id).rater
    assert Judgment.objects.filter(rater=account).count() == 2

    login(page, live_server, researcher.username)
    page.goto(f"{live_server.url}/studies/{study.slug}/")
    # The export runs in the background; the button downloads it once the server says done.
    with page.expect_download(timeout=90_000) as download:
        page.click("#exports button[data-kind=judgments_csv]")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(row["rater"], row["participant_id"]) for row in rows] == [
        (account.username, participant_id)
    ] * 2


def test_a_removed_raters_open_page_says_so_and_saves_nothing(page, live_server):
    researcher = make_user("researcher")
    rater = make_user("rater", username="browser-rater", password=PASSWORD)
    study = make_study(items=3, overlap=1, owner=researcher, raters=[rater])
    login(page, live_server, rater.username)
    page.goto(f"{live_server.url}/rate/{study.public_id}/")
    wait_for_pair(page)

    services.rater_remove(study=study, username=rater.username, actor=researcher)
    time.sleep(READ_S)
    page.keyboard.press("1")
    page.wait_for_selector("#done", state="visible")
    assert "no longer in this study" in page.text_content("#done-reason")
    assert "Not saved" in page.text_content("#notice")
    assert page.is_hidden("#error") and page.is_hidden("#pair")
    assert page.js_errors == []
    assert not Judgment.objects.filter(rater=rater).exists()
