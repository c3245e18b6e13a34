"""End to end in real headless Chromium: a researcher keeps the live dashboard open while a
rater's judgments arrive; its figures move without a reload, and only to what the server sent.

Uses the harness of ``test_browser_rating`` (Debian's ``/usr/bin/chromium``, the module-scoped
``browser`` fixture, ``DJANGO_ALLOW_ASYNC_UNSAFE`` only while it is open); see its docstring,
also for why the test writes only between two of the page's requests (on SQLite the live
server shares one connection with the test).
"""

from __future__ import annotations

import pytest

from annotations import dashboard, services, views
from tests.browser import test_browser_rating as harness
from tests.factories import make_study, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The Chromium fixtures come from tests/browser/conftest.py; the sign-in from the rating tests.
PASSWORD = harness.PASSWORD
login = harness.login
REFRESH_SECONDS = 2


def stat(tab, name: str) -> str:
    return tab.text_content(f'#dashboard [data-stat="{name}"]').strip()


def wait_for_a_refresh(tab) -> None:
    """Until the page has replaced its figures once more and has no request in flight: the
    next poll is then a whole interval away."""
    before = tab.get_attribute("#dashboard-as-of", "data-generated-at")
    tab.wait_for_function(
        "before => document.getElementById('dashboard-as-of').dataset.generatedAt !== before"
        " && window.__inflight === 0",
        arg=before,
        timeout=(REFRESH_SECONDS + 8) * 1000,
    )


def test_the_dashboard_follows_judgments_as_they_arrive(page, live_server, monkeypatch) -> None:
    monkeypatch.setattr(views, "DASHBOARD_REFRESH_SECONDS", REFRESH_SECONDS)
    # Computed for every request, never from a snapshot refreshed in a background thread: the
    # live server's in-memory SQLite database is not reachable from another connection.
    monkeypatch.setattr(dashboard, "LIVE_COMPUTE_SECONDS", 3600.0)
    researcher = make_user("researcher", username="dash-researcher", password=PASSWORD)
    rater = make_user(username="dash-rater")
    # Two raters for k = 2, so nothing blocks the items: the estimate follows the pace.
    study = make_study(items=10, overlap=2, raters=[rater, make_user()], owner=researcher)

    login(page, live_server, researcher.username)
    page.goto(f"{live_server.url}/studies/{study.slug}/")
    page.click(f'a[href="/studies/{study.slug}/dashboard/"]')
    page.wait_for_url(lambda url: url.endswith("/dashboard/"))
    # A reload or navigation would drop this marker.
    page.evaluate("window.__sameDocument = true")

    assert stat(page, "judgments") == "0"
    assert stat(page, "votes-wanted") == "20"
    assert page.get_attribute("#estimate", "data-status") == "no_recent_activity"
    assert page.locator("#pace svg.plot g > title").count() == 0
    assert (
        page.locator(f'tr[data-rater="{rater.username}"] [data-stat="judged"]').inner_text() == "0"
    )

    wait_for_a_refresh(page)
    for _ in range(3):
        lease = services.assignment_next(study=study, rater=rater)
        services.judgment_submit(assignment_id=lease.pk, rater=rater, choice="1", time_ms=6_000)

    page.wait_for_function(
        "() => document.querySelector('#dashboard [data-stat=\"judgments\"]').textContent.trim()"
        " === '3'",
        timeout=(REFRESH_SECONDS + 8) * 1000,
    )
    assert page.evaluate("window.__sameDocument") is True
    assert stat(page, "last-hour") == "3"
    assert stat(page, "votes-done") == "3"
    assert (
        page.locator(f'tr[data-rater="{rater.username}"] [data-stat="judged"]').inner_text() == "3"
    )
    assert page.get_attribute("#estimate", "data-status") == "estimated"
    assert "votes to go at" in page.text_content("#estimate")
    # The hourly plot now has this hour's bar, with its exact count on hover.
    assert "3 judgments" in page.locator("#pace svg.plot g > title").first.text_content()
    # What the page shows is what the server sent: a fragment carrying the same figure.
    bodies = page.evaluate("window.__apiBodies")
    assert any('data-stat="judgments">3<' in body for body in bodies)
    assert "Could not refresh" not in page.text_content("#dashboard-refresh")
    assert page.js_errors == []
