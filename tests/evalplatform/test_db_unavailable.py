"""A database outage answers 503 with Retry-After (JSON on the API, a plain page elsewhere),
never an HTML 500 traceback."""

from __future__ import annotations

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client

from annotations import selectors
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db


def refuse(*args, **kwargs):
    raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: refused')


def test_api_answers_json_503_with_retry_after(rater, monkeypatch, settings) -> None:
    settings.DB_UNAVAILABLE_RETRY_AFTER = 3
    monkeypatch.setattr(selectors, "rater_study_list", refuse)
    response = api_client_for(rater).get("/api/v1/me/studies/")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert response["Retry-After"] == "3"
    assert response.json()["code"] == "database_unavailable"


def test_closed_connection_is_a_503_too(rater, monkeypatch) -> None:
    def closed(*args, **kwargs):
        raise InterfaceError("connection already closed")

    monkeypatch.setattr(selectors, "rater_study_list", closed)
    response = api_client_for(rater).get("/api/v1/me/studies/")
    assert response.status_code == 503 and response.json()["code"] == "database_unavailable"


def test_page_answers_plain_503(rater, monkeypatch) -> None:
    monkeypatch.setattr(selectors, "rater_study_list", refuse)
    client = Client(raise_request_exception=False)
    client.force_login(rater)
    response = client.get("/rate/")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert response["Content-Type"].startswith("text/html")
    assert b"Traceback" not in response.content and b"Temporarily unavailable" in response.content


class RefusingMiddleware:
    """Stands for the session or auth middleware meeting a database that is down."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        refuse()


def test_outage_outside_a_view_is_a_503_not_a_500(settings) -> None:
    settings.DEBUG = False
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.RefusingMiddleware"]
    client = Client(raise_request_exception=False)
    api = client.get("/api/v1/me/")
    assert api.status_code == 503 and api.json()["code"] == "database_unavailable"
    page = client.get("/login/")
    assert page.status_code == 503 and page["Retry-After"]


def test_other_errors_stay_500(rater, monkeypatch) -> None:
    def bug(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(selectors, "rater_study_list", bug)
    client = Client(raise_request_exception=False)
    client.force_login(rater)
    assert client.get("/api/v1/me/studies/").status_code == 500
