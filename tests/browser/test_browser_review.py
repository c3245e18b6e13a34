"""End to end in real headless Chromium: a researcher reviews disagreements, filters them,
pages through them and adjudicates one (checked in the database).

Uses the harness of ``test_browser_rating`` (Debian's ``/usr/bin/chromium``, the module-scoped
``browser`` fixture, ``DJANGO_ALLOW_ASYNC_UNSAFE`` only while it is open); see its docstring.
"""

from __future__ import annotations

import pytest

from annotations import services
from annotations.models import Adjudication, AuditEvent
from scoring.models import JudgeVerdict
from tests.browser import test_browser_rating as harness
from tests.factories import make_study, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The Chromium fixtures come from tests/browser/conftest.py; the sign-in from the rating tests.
PASSWORD = harness.PASSWORD
login = harness.login


def judge_all(study, rater, prefer) -> None:
    while (a := services.assignment_next(study=study, rater=rater)) is not None:
        wanted = prefer(a.item)
        choice = "1" if a.left_system == wanted else "2"
        services.judgment_submit(
            assignment_id=a.pk,
            rater=rater,
            choice=choice,
            rationale=f"{rater.username} prefers {wanted}",
            time_ms=2500,
        )


@pytest.fixture
def review_study(transactional_db):
    """25 items, k = 3: items 0-21 split (base, tuned, tuned), 22-24 unanimous for tuned; the
    judge says base on items 0-2 and 22-23. 24 disagreements: two pages of 20 and 4."""
    researcher = make_user("researcher", username="browser-researcher", password=PASSWORD)
    raters = [make_user() for _ in range(3)]
    study = make_study(items=25, overlap=3, raters=raters, owner=researcher)
    items = list(study.items.order_by("id"))
    index = {item.pk: k for k, item in enumerate(items)}
    judge_all(study, raters[0], lambda item: "base" if index[item.pk] < 22 else "tuned")
    for rater in raters[1:]:
        judge_all(study, rater, lambda item: "tuned")
    for k in (0, 1, 2, 22, 23):
        JudgeVerdict.objects.create(
            item=items[k],
            judge_id="local:judge",
            template="mtbench_pairwise",
            p_tuned=0.1,
            verdict="base",
            raw={"p_first": {"tuned_first": 0.1, "base_first": 0.9}},
        )
    return researcher, study, items


def shown(tab) -> list[str]:
    return tab.eval_on_selector_all(
        "section.review-item", "nodes => nodes.map(n => n.dataset.item)"
    )


def test_researcher_filters_pages_and_adjudicates(page, live_server, review_study):
    researcher, study, items = review_study
    login(page, live_server, researcher.username)
    page.goto(f"{live_server.url}/studies/{study.slug}/disagreements/")

    assert page.text_content("#review-count").strip() == "24 items · page 1 of 2"
    assert len(shown(page)) == 20
    first = page.locator("section.review-item").first
    assert "Base answer 0 from the first model." in first.inner_text()
    assert "Tuned answer 0, more complete and polite." in first.inner_text()
    assert page.locator("form.adjudicate input[type=radio]:checked").count() == 0

    page.click("a[rel=next]")
    page.wait_for_url(lambda url: "page=2" in url)
    assert len(shown(page)) == 4

    page.select_option("select[name=reason]", "judge_disagrees")
    page.click("#review-filters button[type=submit]")
    page.wait_for_url(lambda url: "reason=judge_disagrees" in url)
    assert shown(page) == [items[k].external_id for k in (0, 1, 2, 22, 23)]

    target = page.locator(f'section[data-item="{items[22].external_id}"]')
    target.locator("textarea[name=rationale]").fill("the judge is right: base is complete")
    # No ruling chosen: the browser refuses to send the form, and nothing is recorded.
    target.locator("button[type=submit]").click()
    assert target.locator("input[name=preference]:invalid").count() == 4
    assert not Adjudication.objects.exists()

    target.locator("input[name=preference][value=base]").check()
    with page.expect_navigation():
        target.locator("button[type=submit]").click()
    assert "reason=judge_disagrees" in page.url
    assert f"Item {items[22].external_id} adjudicated." in page.text_content(".messages")
    assert (
        "Adjudicated: base"
        in page.locator(f'section[data-item="{items[22].external_id}"]').inner_text()
    )

    adjudication = Adjudication.objects.get()
    assert adjudication.item_id == items[22].pk
    assert adjudication.preference == "base"
    assert adjudication.rationale == "the judge is right: base is complete"
    assert adjudication.decided_by == researcher
    assert AuditEvent.objects.filter(action="adjudicated", actor=researcher).count() == 1
    assert page.js_errors == []
