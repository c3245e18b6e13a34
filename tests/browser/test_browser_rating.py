"""End to end in real headless Chromium: a rater logs in and judges pairs with the keyboard.

Uses Debian's ``chromium`` package (``/usr/bin/chromium``), not a browser downloaded by
``playwright install``. Without it the tests skip locally and fail in CI (CI installs it).

Two things specific to this harness:

* Playwright's sync API keeps an asyncio event loop running in the test thread, so Django's
  ``async_unsafe`` guard would raise ``SynchronousOnlyOperation`` for every ORM call made in
  the test thread (factories, assertions, pytest-django's flush) while the browser is open.
  The ``browser`` fixture sets ``DJANGO_ALLOW_ASYNC_UNSAFE`` only for this module's lifetime
  and restores it afterwards, so other test modules keep the guard. It is safe here: the ORM
  is only ever called synchronously from the test thread.
* pytest-django's test database for SQLite is in memory, and ``live_server`` shares that one
  connection with every request thread. Two overlapping requests (the page prefetches the next
  pair while the rater reads) would share one transaction state, so before each key press the
  test waits until the page has no ``fetch`` in flight. In production each request has its own
  connection and this does not arise.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from annotations import services
from annotations.importers import parse_jsonl
from annotations.models import Judgment
from tests.factories import BASE_MODEL, TUNED_MODEL, jsonl_bytes, make_study, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "pw-browser-123456"
TIMEOUT_MS = 10_000
READ_S = 0.35  # longer than the page's 300 ms guard after a pair first paints

# Counts fetches in flight and keeps the bodies of API responses, so the test can wait for a
# quiet page and check what the server sent to the browser (not only what it rendered).
INIT_SCRIPT = """
(() => {
  window.__inflight = 0;
  window.__apiBodies = [];
  const realFetch = window.fetch.bind(window);
  window.fetch = async (...args) => {
    window.__inflight += 1;
    try {
      const response = await realFetch(...args);
      try { window.__apiBodies.push(await response.clone().text()); } catch (e) {}
      return response;
    } finally {
      window.__inflight -= 1;
    }
  };
})();
"""

# Every class, id and data-* attribute (name and value) on the page that mentions a system.
LEAKY_ATTRIBUTES_JS = """
() => {
  const hits = [];
  for (const node of document.querySelectorAll("*")) {
    for (const attr of node.attributes) {
      const relevant = attr.name === "class" || attr.name === "id" || attr.name.startsWith("data-");
      if (!relevant) continue;
      const text = (attr.name + "=" + attr.value).toLowerCase();
      if (text.includes("base") || text.includes("tuned")) {
        hits.push(node.tagName.toLowerCase() + "[" + attr.name + "=" + attr.value + "]");
      }
    }
  }
  return hits;
}
"""


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(reason: str):
    if running_in_ci():
        pytest.fail(f"{reason}; CI must install it (apt-get install chromium)")
    pytest.skip(f"{reason} (CI runs these tests)")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is missing")

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Each test hashes a password twice (user creation, login in the live server): PBKDF2's
    # full work factor would cost about a second per test for nothing under test here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def rater_study(transactional_db):
    rater = make_user("rater", username="browser-rater", password=PASSWORD)
    study = make_study(items=3, overlap=1, raters=[rater])
    return rater, study


def login(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.card button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)


def open_rating_page(page, live_server, study) -> None:
    with page.expect_response(re.compile(r"/static/js/rate\.js$")) as script:
        page.goto(f"{live_server.url}/rate/{study.public_id}/")
    assert script.value.status == 200, "rate.js was not served by the live server"
    wait_for_pair(page)


def wait_for_quiet(page) -> None:
    page.wait_for_function("window.__inflight === 0")


def wait_for_pair(page) -> str:
    page.wait_for_selector("#pair", state="visible")
    page.wait_for_function("document.getElementById('prompt').textContent.trim() !== ''")
    wait_for_quiet(page)
    return page.text_content("#prompt")


def assert_blinded(page) -> None:
    html = page.content()
    assert BASE_MODEL not in html
    assert TUNED_MODEL not in html
    assert page.evaluate(LEAKY_ATTRIBUTES_JS) == []


def test_rater_judges_three_pairs_with_the_keyboard(page, live_server, rater_study):
    rater, study = rater_study
    login(page, live_server, rater.username)
    open_rating_page(page, live_server, study)

    screenshots = os.environ.get("BROWSER_SCREENSHOTS")
    if screenshots:
        page.screenshot(path=str(Path(screenshots) / "rate.png"), full_page=True)

    prompts = []
    for key in ["1", "2", "3"]:
        prompt = page.text_content("#prompt")
        prompts.append(prompt)
        assert_blinded(page)
        # A rater reads for a moment: keys within 300 ms of the pair's first paint are ignored.
        time.sleep(READ_S)
        page.keyboard.press(key)
        page.wait_for_function(
            """(previous) => !document.getElementById('done').hidden
                || document.getElementById('prompt').textContent !== previous""",
            arg=prompt,
        )
        wait_for_quiet(page)

    page.wait_for_selector("#done", state="visible")
    assert page.is_hidden("#pair")
    assert page.is_hidden("#error")
    assert page.text_content("#progress") == "3 of 3 for you"
    assert len(set(prompts)) == 3, prompts
    assert_blinded(page)
    api_bodies = "\n".join(page.evaluate("window.__apiBodies"))
    assert BASE_MODEL not in api_bodies and TUNED_MODEL not in api_bodies
    assert page.js_errors == []

    judgments = list(Judgment.objects.filter(rater=rater).order_by("id"))
    assert [j.choice for j in judgments] == ["left", "right", "tie"]
    assert all(j.item.study_id == study.pk for j in judgments)
    assert len({j.item_id for j in judgments}) == 3
    assert all(j.time_ms is not None and j.time_ms >= 300 for j in judgments)


def test_question_mark_opens_the_help_dialog(page, live_server, rater_study):
    rater, study = rater_study
    login(page, live_server, rater.username)
    open_rating_page(page, live_server, study)

    assert page.is_hidden("#help")
    page.keyboard.press("?")
    page.wait_for_selector("#help", state="visible")
    assert page.evaluate("document.getElementById('help').open") is True
    assert "tie" in page.text_content("#help")

    # Keys belong to the dialog while it is open: nothing is judged behind it.
    page.keyboard.press("1")
    assert page.evaluate("window.__inflight") == 0
    assert page.evaluate("document.getElementById('help').open") is True

    page.keyboard.press("Escape")
    page.wait_for_selector("#help", state="hidden")
    assert Judgment.objects.filter(rater=rater).count() == 0
    assert page.js_errors == []


TRICKY_PROMPT = (
    "Wrap it in ```json``` fences; the answer is 42.\n"
    "<script>window.__pwned = 1</script> & <b>not bold</b>\n"
    "```python\n"
    "if a < b:\n"
    "    print('<ok>')\n"
    "```\n"
    "After the block.\n\n"
    "| col | val |\n|-----|-----|\n| x | 1 |\n\n"
    "- **bold** item\n"
)


def test_markdown_renders_safely_and_alike_on_both_sides(page, live_server, transactional_db):
    rater = make_user("rater", username="browser-rater", password=PASSWORD)
    # make_study's records are plain, so this builds the study through the same services with
    # one tricky item of its own.
    study = services.study_create(
        slug="tricky-study",
        name="Tricky study",
        task_type="generation",
        overlap=1,
        status="open",
        base_model=BASE_MODEL,
        tuned_model=TUNED_MODEL,
    )
    same = "| a | b |\n|---|---|\n| 1 | 2 |\n\n*same* text"
    record = {"id": "tricky", "prompt": TRICKY_PROMPT, "base": same, "tuned": same}
    parsed = parse_jsonl(jsonl_bytes([record]), file="tricky.jsonl")
    services.items_import(study=study, parsed=parsed, source="tricky.jsonl")
    services.raters_assign(study=study, usernames=[rater.username])

    login(page, live_server, rater.username)
    open_rating_page(page, live_server, study)

    assert page.evaluate("window.__pwned") is None
    assert page.locator("#pair script, #pair b, #pair img, #pair a").count() == 0
    prompt = page.inner_text("#prompt")
    for piece in [
        "the answer is 42.",
        "<script>window.__pwned = 1</script> & <b>not bold</b>",
        "After the block.",
    ]:
        assert piece in prompt
    code = page.locator("#prompt pre code")
    assert code.count() == 1
    assert code.inner_text() == "if a < b:\n    print('<ok>')\n"
    assert page.locator("#prompt table td").count() == 2
    assert page.inner_text("#prompt strong") == "bold"
    # Both sides through the same renderer: identical text gives identical markup.
    assert page.inner_html("#slot-1") == page.inner_html("#slot-2")
    assert page.locator("#slot-1 table").count() == 1
    assert page.js_errors == []
