"""In real headless Chromium: a fine-tune's surface tells (a leading space, "Sure!", a trailing
newline) do not reach the rating page when the study strips them. Both slots of every pair
render the same shape, and each shows exactly what `display_text` makes of the stored output."""

from __future__ import annotations

import json

import pytest

from annotations import services
from annotations.blinding import display_text
from annotations.importers import parse_jsonl
from annotations.models import Assignment, Output
from tests.annotations.blinding_data import sure_pairs
from tests.browser.test_browser_rating import (  # noqa: F401 - fixtures
    PASSWORD,
    _fast_password_hashing,
    browser,
    login,
    open_rating_page,
    page,
    wait_for_quiet,
)
from tests.factories import jsonl_bytes, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ITEMS = 8

# For each slot: does the rendered HTML or the text start or end with whitespace, start with
# "Sure!", or hold a newline at its edges?
SLOT_SHAPES_JS = """
() => [1, 2].map((slot) => {
  const body = document.getElementById('slot-' + slot);
  const html = body.innerHTML, text = body.textContent;
  return {
    slot,
    text,
    leading: /^\\s/.test(html) || /^\\s/.test(text),
    trailing: /\\s$/.test(html) || /\\s$/.test(text),
    sure: text.trim().startsWith('Sure!'),
  };
})
"""


def test_both_slots_render_the_same_shape(page, live_server, transactional_db):  # noqa: F811
    rater = make_user("rater", username="browser-blind", password=PASSWORD)
    study = services.study_create(
        slug="blind-study",
        name="Blind study",
        task_type="generation",
        overlap=1,
        display_strip_prefixes=["Sure!"],
    )
    records = [
        {"id": f"q{i}", "prompt": f"Question {i}?", "base": base, "tuned": tuned}
        for i, (base, tuned) in enumerate(sure_pairs(ITEMS))
    ]
    services.items_import(
        study=study, parsed=parse_jsonl(jsonl_bytes(records), file="s.jsonl"), source="s.jsonl"
    )
    services.study_transition(
        study=study, target="open", acknowledge_blinding_risk=True, reason="8 items: no AUC"
    )
    services.raters_assign(study=study, usernames=[rater.username])
    raw = {(o.item.prompt, o.system): o.text for o in Output.objects.select_related("item")}

    login(page, live_server, rater.username)
    open_rating_page(page, live_server, study)
    for _ in range(ITEMS):
        prompt = page.text_content("#prompt")
        shapes = page.evaluate(SLOT_SHAPES_JS)
        assert [(s["leading"], s["trailing"], s["sure"]) for s in shapes] == [(False,) * 3] * 2
        assignment = Assignment.objects.get(item__prompt=prompt.strip(), rater=rater)
        sides = {1: assignment.left_system, 2: assignment.right_system}
        for shape in shapes:
            original = raw[(prompt.strip(), sides[shape["slot"]])]
            assert shape["text"] == display_text(original, strip_prefixes=["Sure!"])
        page.wait_for_timeout(350)  # key presses in the first 300 ms of a pair are ignored
        page.keyboard.press("3")
        page.wait_for_function(
            """(previous) => !document.getElementById('done').hidden
                || document.getElementById('prompt').textContent !== previous""",
            arg=prompt,
        )
        wait_for_quiet(page)
    page.wait_for_selector("#done", state="visible")
    # What the server sent the browser, not only what it rendered.
    sent = [json.loads(body) for body in page.evaluate("window.__apiBodies") if body]
    texts = [r["text"] for body in sent if "responses" in body for r in body["responses"]]
    assert len(texts) >= 2 * ITEMS
    assert all(t == t.strip() and not t.startswith("Sure!") for t in texts)
    assert page.js_errors == []
