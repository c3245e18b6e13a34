"""The rating page rides out a database restart: a judgment answered 503 is sent again after
`Retry-After` with the same Idempotency-Key, and counts once."""

from __future__ import annotations

import json
import re
import time

import pytest

from annotations.models import Judgment
from tests.browser.test_browser_rating import (  # noqa: F401 - fixtures
    READ_S,
    _fast_password_hashing,
    browser,
    login,
    open_rating_page,
    page,
    rater_study,
    wait_for_quiet,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_judgment_answered_503_is_resent_with_the_same_key(page, live_server, rater_study):  # noqa: F811
    rater, study = rater_study
    login(page, live_server, rater.username)
    open_rating_page(page, live_server, study)
    keys: list[str | None] = []

    def database_restarting_once(route, request) -> None:
        keys.append(request.headers.get("idempotency-key"))
        if len(keys) == 1:
            route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body=json.dumps({"detail": "database unavailable", "code": "database_unavailable"}),
            )
        else:
            route.continue_()

    page.route(re.compile(r"/api/v1/assignments/\d+/judgment/$"), database_restarting_once)
    prompt = page.text_content("#prompt")
    time.sleep(READ_S)
    started = time.monotonic()
    page.keyboard.press("1")
    page.wait_for_function(
        "(previous) => document.getElementById('prompt').textContent !== previous", arg=prompt
    )
    wait_for_quiet(page)
    assert time.monotonic() - started >= 1.0, "the page did not wait for Retry-After"
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1], keys
    assert Judgment.objects.filter(rater=rater).count() == 1
    assert page.is_hidden("#error")
    assert page.js_errors == []
