"""End to end in real headless Chromium: a researcher runs a study without a terminal. An upload
with errors shows each `file:line` and writes nothing; a study is created, its pairs previewed
and imported, its settings set, a rater assigned, the study opened, rated and closed.

Uses the harness of ``test_browser_rating`` (Debian's ``/usr/bin/chromium``, the module-scoped
``browser`` fixture, ``DJANGO_ALLOW_ASYNC_UNSAFE`` only while it is open); see its docstring.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from annotations import services
from annotations.models import AuditEvent, Item, Study
from tests.browser import test_browser_rating as harness
from tests.factories import jsonl_bytes, make_user, pair_records

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The Chromium fixtures come from tests/browser/conftest.py; the sign-in from the rating tests.
PASSWORD = harness.PASSWORD
login = harness.login


@pytest.fixture
def researcher(transactional_db):
    return make_user("researcher", username="browser-researcher", password=PASSWORD)


def screenshot(tab, name: str) -> None:
    folder = os.environ.get("BROWSER_SCREENSHOTS")
    if folder:
        tab.screenshot(path=str(Path(folder) / name), full_page=True)


def choose_file(tab, selector: str, name: str, data: bytes) -> None:
    tab.set_input_files(selector, {"name": name, "mimeType": "application/json", "buffer": data})


def test_an_upload_with_errors_shows_each_line_and_writes_nothing(
    page, live_server, researcher, settings
):
    settings.IMPORT_MAX_UPLOAD_BYTES = 20_000
    study = services.study_create(
        slug="with-errors", name="Errors", task_type="generation", created_by=researcher
    )
    lines = [
        json.dumps({"id": "a", "prompt": "p", "base": "b", "tuned": "t"}),
        '{"id": "b", "prompt": ',
        json.dumps({"id": "c", "prompt": "p", "base": "b"}),
    ]
    login(page, live_server, researcher.username)
    page.goto(f"{live_server.url}/studies/{study.slug}/import/")
    choose_file(page, "input[name=file]", "bad.jsonl", "\n".join(lines).encode())
    page.click("#upload-form button[type=submit]")

    page.wait_for_selector("#import-errors")
    assert "2 bad line(s) in bad.jsonl" in page.text_content("#import-refusal")
    errors = page.locator("#import-errors li").all_inner_texts()
    assert [e.split(": ", 1)[0] for e in errors] == ["bad.jsonl:2", "bad.jsonl:3"]
    assert "missing field 'tuned'" in errors[1]
    screenshot(page, "import-errors.png")
    assert page.locator("#confirm-import").count() == 0
    assert page.text_content("#items-held") == "0"
    assert Item.objects.count() == 0
    assert not AuditEvent.objects.filter(action="items_imported").exists()

    # A file over the upload limit is stopped in the page, with the limit named.
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else 0)
    choose_file(page, "input[name=file]", "big.jsonl", jsonl_bytes(pair_records(300)))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#upload-too-large", state="visible")
    notice = page.text_content("#upload-too-large")
    assert "over the upload limit of 19.5 KB" in notice, notice
    assert posts == []
    assert Item.objects.count() == 0
    assert page.js_errors == []


def test_a_study_from_creation_to_closing(browser, page, live_server, researcher):
    rater = make_user("rater", username="browser-rater", password=PASSWORD)
    login(page, live_server, researcher.username)

    # Create.
    page.goto(f"{live_server.url}/studies/new/")
    page.fill("input[name=slug]", "browser-flow")
    page.fill("input[name=name]", "Browser flow")
    page.select_option("select[name=task_type]", "generation")
    page.click("form.card button[type=submit]")
    page.wait_for_url(f"{live_server.url}/studies/browser-flow/import/")

    # Upload, preview, confirm.
    choose_file(page, "input[name=file]", "pairs.jsonl", jsonl_bytes(pair_records(6)))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#preview-items")
    assert page.locator("#preview-items tbody tr").count() == 5
    assert "6 items ready" in page.text_content("#import-preview h2")
    assert Item.objects.count() == 0
    screenshot(page, "import-preview.png")
    page.click("#confirm-import")
    page.wait_for_url(f"{live_server.url}/studies/browser-flow/#blinding-audit")
    assert "Imported 6 items." in page.text_content(".messages")
    study = Study.objects.get(slug="browser-flow")
    assert study.items.count() == 6

    # Settings: one vote per item, instructions for the raters.
    page.click("#steps a[href$='/settings/']")
    page.fill("input[name=overlap]", "1")
    page.fill("textarea[name=instructions]", "Pick the more helpful answer.")
    page.click("#settings-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/studies/browser-flow/")
    study.refresh_from_db()
    assert study.overlap == 1 and study.instructions == "Pick the more helpful answer."

    # Assign the rater, open.
    page.fill("#assign-raters input[name=usernames]", rater.username)
    page.click("#assign-raters button[type=submit]")
    page.wait_for_selector("text=Raters assigned.")
    page.click("form[data-move=open] button[type=submit]")
    page.wait_for_selector("text=Study is now collecting.")
    study.refresh_from_db()
    assert study.status == "open"
    screenshot(page, "study-open.png")

    # The rater gets a pair.
    rater_context = browser.new_context()
    rater_context.set_default_timeout(harness.TIMEOUT_MS)
    rater_context.add_init_script(harness.INIT_SCRIPT)
    try:
        rater_page = rater_context.new_page()
        login(rater_page, live_server, rater.username)
        harness.open_rating_page(rater_page, live_server, study)
        harness.assert_blinded(rater_page)
    finally:
        rater_context.close()

    # Close.
    page.goto(f"{live_server.url}/studies/browser-flow/")
    page.fill("form[data-move=closed] input[name=reason]", "enough for a pilot")
    page.click("form[data-move=closed] button[type=submit]")
    page.wait_for_selector("text=Study is now closed (paused).")
    study.refresh_from_db()
    assert study.status == "closed"
    assert page.locator("form[data-move=open]").count() == 1
    assert page.js_errors == []
