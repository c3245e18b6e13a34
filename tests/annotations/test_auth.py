"""Signing in: throttled per address and per username, tokens expire and can be revoked,
passwords pass Django's validators on every way to set one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotations import services
from annotations.errors import DomainValidationError
from tests.factories import make_user

pytestmark = pytest.mark.django_db

TIGHT = {"login_ip": "1000/min", "login_username": "5/min"}


def token_for(client: APIClient, username: str, password: str = "pw-123456"):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password})


@override_settings(LOGIN_THROTTLE_RATES=TIGHT)
def test_guessing_a_password_is_throttled_per_username() -> None:
    rater = make_user()
    client = APIClient()
    codes = [token_for(client, rater.username, f"wrong-{i}").status_code for i in range(8)]
    assert codes[:5] == [400] * 5 and set(codes[5:]) == {429}
    # Throttled: even the right password waits, and from another address too.
    assert token_for(client, rater.username).status_code == 429
    elsewhere = APIClient(REMOTE_ADDR="10.9.8.7")
    assert token_for(elsewhere, rater.username).status_code == 429
    # Another user is not locked out by someone guessing this one's password.
    other = make_user()
    assert token_for(client, other.username).status_code == 200


@override_settings(LOGIN_THROTTLE_RATES={"login_ip": "4/min", "login_username": "1000/min"})
def test_one_address_trying_many_usernames_is_throttled() -> None:
    client = APIClient()
    codes = [token_for(client, f"user{i}", "x").status_code for i in range(6)]
    assert codes[:4] == [400] * 4 and set(codes[4:]) == {429}
    assert "Retry-After" in token_for(client, "user9", "x")


@override_settings(LOGIN_THROTTLE_RATES=TIGHT)
def test_the_login_page_is_throttled_too() -> None:
    rater = make_user()
    client = Client()
    for _ in range(5):
        assert (
            client.post("/login/", {"username": rater.username, "password": "no"}).status_code
            == 200
        )
    page = client.post("/login/", {"username": rater.username, "password": "pw-123456"})
    assert page.status_code == 429 and b"Too many sign-in attempts" in page.content
    assert "_auth_user_id" not in client.session


@override_settings(TOKEN_TTL_HOURS=24)
def test_expired_tokens_are_refused_and_a_new_one_is_issued() -> None:
    rater = make_user()
    client = APIClient()
    first = token_for(client, rater.username).json()
    assert first["expires_at"]
    Token.objects.filter(key=first["token"]).update(created=timezone.now() - timedelta(hours=25))
    client.credentials(HTTP_AUTHORIZATION=f"Token {first['token']}")
    refused = client.get("/api/v1/me/")
    assert refused.status_code in (401, 403) and "expired" in refused.json()["detail"]
    second = token_for(APIClient(), rater.username).json()["token"]
    assert second != first["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {second}")
    assert client.get("/api/v1/me/").status_code == 200


@override_settings(TOKEN_TTL_HOURS=24)
def test_the_expiry_check_adds_no_query(django_assert_num_queries) -> None:
    rater = make_user()
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Token {token_for(client, rater.username).json()['token']}"
    )
    with django_assert_num_queries(1):
        assert client.get("/api/v1/me/").status_code == 200


def test_a_revoked_token_stops_working() -> None:
    rater = make_user()
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Token {token_for(client, rater.username).json()['token']}"
    )
    assert client.post("/api/v1/auth/token/revoke/").status_code == 204
    assert client.get("/api/v1/me/").status_code in (401, 403)
    assert not Token.objects.filter(user=rater).exists()


@pytest.mark.parametrize("password", ["x", "short7!", "123456789012", "password123", "alice2024x"])
def test_weak_passwords_are_refused_by_the_service(password) -> None:
    with pytest.raises(DomainValidationError) as caught:
        services.user_create(username="alice2024", password=password, role="rater")
    assert "password" in caught.value.errors


@override_settings(LOGIN_THROTTLE_RATES={"login_ip": "3/min", "login_username": "1000/min"})
def test_a_forged_forwarded_for_header_does_not_escape_the_address_throttle() -> None:
    client = APIClient()
    codes = [
        client.post(
            "/api/v1/auth/token/",
            {"username": f"u{i}", "password": "x"},
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        ).status_code
        for i in range(5)
    ]
    assert codes[:3] == [400] * 3 and set(codes[3:]) == {429}


def test_successful_sign_ins_are_not_counted() -> None:
    # A room of raters behind one address signing in at the same time is not throttled: only
    # failures count.
    from django.test import override_settings

    users = [make_user("rater", password="correct-horse-9") for _ in range(5)]
    client = APIClient()
    with override_settings(LOGIN_THROTTLE_RATES={"login_ip": "3/min", "login_username": "3/min"}):
        for user in users:
            response = client.post(
                "/api/v1/auth/token/",
                {"username": user.username, "password": "correct-horse-9"},
                format="json",
            )
            assert response.status_code == 200, response.content
