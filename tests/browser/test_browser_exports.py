"""End to end in real headless Chromium: the report page's way back to its study and its export
buttons (each download checked against the API's export of the same kind), an export the
server reports as failed, and the report, sign-off and exported report pages on a 390 px phone.

Uses the harness of ``test_browser_rating`` (Debian's ``/usr/bin/chromium``, the module-scoped
``browser`` fixture, ``DJANGO_ALLOW_ASYNC_UNSAFE`` only while it is open); see its docstring.
Exports run in-process (Celery eager) so the live server builds each file inside the request
that asks for it, as it does without a broker.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from annotations.models import Study
from scoring.models import ExportKind, ExportStatus, ReportExport
from tests.browser import test_browser_rating as harness
from tests.conftest import api_client_for
from tests.factories import make_user
from tests.scoring.release_helpers import make_ready, submission, vote_all

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The Chromium fixtures come from tests/browser/conftest.py; the sign-in from the rating tests.
PASSWORD = harness.PASSWORD
login = harness.login

PHONE = {"width": 390, "height": 844}
# Building a report (statistics and plots) takes seconds on a busy 2-core machine: the report
# page and each export get longer than the harness's 10 s.
REPORT_TIMEOUT_MS = 90_000
# A run id and a comment without break opportunities: the page must wrap them, not widen.
RUN_ID = "run-2025-11-27-support-assistant-lora-r16-alpha32-epoch3-checkpoint-000200"
LONG_COMMENT = "Needs-another-look-at-the-holdout-set-before-release-" * 3
GENERATED_AT = re.compile(r" at \d{4}-\d\d-\d\dT[0-9:.+\-]+")


@pytest.fixture
def run_study(transactional_db, exports_in_process):
    """A training run's study with votes from two raters who disagree on most items, ready for
    sign-off."""
    researcher = make_user("researcher", username="browser-exporter", password=PASSWORD)
    owner = make_user("release_owner", username="browser-owner", password=PASSWORD)
    raters = [make_user() for _ in range(2)]
    payload = submission(RUN_ID, raters=[r.username for r in raters])
    # One output with a long unbroken token (a URL), for the phone's disagreement table.
    payload["items"][5]["tuned"] += " See https://docs.example.com/" + "settings-reset" * 30
    response = api_client_for(researcher).post("/api/v1/runs/", payload, format="json")
    assert response.status_code == 201, response.content
    slug = response.json()["study"]
    # The raters split on every item but t000 and t001: the report lists disagreements.
    vote_all({raters[0].username: api_client_for(raters[0])}, slug, prefer="tuned")
    vote_all({raters[1].username: api_client_for(raters[1])}, slug, prefer="base")
    make_ready(slug, researcher)
    return researcher, owner, Study.objects.get(slug=slug)


def parsed(kind: str, text: str):
    """An export's content as data, minus its generation time."""
    if kind == "report_json":
        data = json.loads(text)
        data.pop("generated_at")
        return data
    if kind == "report_html":
        return GENERATED_AT.sub(" at <time>", text)
    if kind.endswith("_csv"):
        return list(csv.reader(io.StringIO(text)))
    return [json.loads(line) for line in text.splitlines()]


def api_export(client, slug: str, kind: str) -> str:
    started = client.post(f"/api/v1/studies/{slug}/exports/", {"kind": kind}, format="json")
    assert started.status_code == 202, started.content
    status = client.get(started.json()["status_url"]).json()
    assert status["status"] == "done", status
    download = client.get(status["download_url"])
    return b"".join(download.streaming_content).decode("utf-8")


def test_report_page_leads_back_and_every_export_button_downloads_the_api_export(
    page, live_server, run_study
) -> None:
    researcher, _, study = run_study
    page.set_default_timeout(REPORT_TIMEOUT_MS)
    login(page, live_server, researcher.username)
    page.goto(f"{live_server.url}/studies/{study.slug}/report/")
    page.click("#back-to-study")
    page.wait_for_url(f"{live_server.url}/studies/{study.slug}/")
    page.go_back()

    buttons = page.eval_on_selector_all(
        "#exports button[data-kind]", "nodes => nodes.map(n => n.dataset.kind)"
    )
    assert sorted(buttons) == sorted(ExportKind.values)  # every export, none missing
    client = api_client_for(researcher)
    for kind in buttons:
        with page.expect_download() as started:
            page.click(f"#exports button[data-kind={kind}]")
        download = started.value
        from_page = download.path().read_text(encoding="utf-8")
        line = page.locator(f".export-status li[data-kind={kind}]")
        assert line.get_attribute("data-state") == "done"
        assert "ready, downloading" in line.inner_text()
        assert parsed(kind, from_page) == parsed(kind, api_export(client, study.slug, kind)), kind
        assert download.suggested_filename.startswith(study.slug)
    assert page.js_errors == []
    # Each click built one export, as the server recorded it (the API made as many again).
    assert ReportExport.objects.filter(status=ExportStatus.DONE).count() == 2 * len(buttons)


def test_an_export_the_server_reports_failed_says_so(
    page, live_server, run_study, monkeypatch
) -> None:
    from scoring import exports

    researcher, _, study = run_study
    # No task runs: the export stays pending until the test records its failure, as a worker
    # that failed would.
    monkeypatch.setattr(exports, "enqueue_export", lambda export_id: None)
    page.set_default_timeout(REPORT_TIMEOUT_MS)
    login(page, live_server, researcher.username)
    page.goto(f"{live_server.url}/studies/{study.slug}/report/")
    page.click("#exports button[data-kind=items_csv]")
    line = page.locator(".export-status li[data-kind=items_csv]")
    line.and_(page.locator("[data-state=pending]")).wait_for()
    assert "is being built" in line.inner_text()
    export = ReportExport.objects.get(kind="items_csv")
    ReportExport.objects.filter(pk=export.pk).update(
        status=ExportStatus.FAILED, error="OSError: disk full"
    )
    line.and_(page.locator("[data-state=failed]")).wait_for()
    assert line.inner_text() == "Item rows CSV: failed: OSError: disk full"
    assert page.is_enabled("#exports button[data-kind=items_csv]")


def test_release_owner_reads_the_report_without_export_buttons(
    page, live_server, run_study
) -> None:
    _, owner, study = run_study
    page.set_default_timeout(REPORT_TIMEOUT_MS)
    login(page, live_server, owner.username)
    page.goto(f"{live_server.url}/studies/{study.slug}/report/")
    assert page.locator("#exports").count() == 0
    page.click("#to-signoff")
    page.wait_for_url(f"{live_server.url}/runs/{RUN_ID}/signoff/")


def document_width(tab) -> int:
    return tab.evaluate("document.documentElement.scrollWidth")


def phone_tab(browser, live_server, user):
    context = browser.new_context(viewport=PHONE)
    context.set_default_timeout(REPORT_TIMEOUT_MS)
    tab = context.new_page()
    login(tab, live_server, user.username)
    return context, tab


def test_report_signoff_and_exported_report_fit_a_phone(browser, live_server, run_study) -> None:
    from scoring.release import signoff_record

    researcher, owner, study = run_study
    context, tab = phone_tab(browser, live_server, researcher)
    try:
        tab.goto(f"{live_server.url}/studies/{study.slug}/report/")
        assert tab.locator("#exports button").count() == len(ExportKind.values)
        assert tab.locator("#disagreements tbody tr").count() == 10
        assert document_width(tab) <= PHONE["width"]
        html = api_export(api_client_for(researcher), study.slug, "report_html")
        tab.set_content(html)
        assert "settings-reset" in tab.inner_text("#disagreements")
        assert document_width(tab) <= PHONE["width"]
    finally:
        context.close()
    context, tab = phone_tab(browser, live_server, owner)
    try:
        tab.goto(f"{live_server.url}/runs/{RUN_ID}/signoff/")
        assert RUN_ID in tab.inner_text("h1")
        assert tab.locator("textarea[name=comment]").count() == 1  # the sign-off form
        assert document_width(tab) <= PHONE["width"]
        signoff_record(study=study, actor=owner, decision="reject", comment=LONG_COMMENT)
        tab.reload()
        assert "Needs-another-look" in tab.inner_text("body")  # the sign-offs table
        assert tab.locator("textarea[name=reason]").count() == 1  # the reopen form
        assert document_width(tab) <= PHONE["width"]
    finally:
        context.close()
