"""The address rules of `evalplatform.outbound` and the endpoint list from the environment."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from evalplatform import outbound
from evalplatform import settings as settings_module


def test_judge_endpoints_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("JUDGE_ENDPOINTS", "vllm=http://vllm:8000/v1, open-ai = https://api.x/v1")
    monkeypatch.setenv("JUDGE_ENDPOINT_VLLM_API_KEY", "k1")
    monkeypatch.setenv("JUDGE_ENDPOINT_OPEN_AI_API_KEY", "k2")
    endpoints = settings_module.env_judge_endpoints()
    assert endpoints["vllm"] == {"base_url": "http://vllm:8000/v1", "api_key": "k1"}
    assert endpoints["open-ai"] == {"base_url": "https://api.x/v1", "api_key": "k2"}
    monkeypatch.setenv("JUDGE_ENDPOINTS", "vllm:http://vllm")
    with pytest.raises(ImproperlyConfigured, match="JUDGE_ENDPOINTS"):
        settings_module.env_judge_endpoints()


@override_settings(JUDGE_ALLOWED_BASE_URLS=["http://vllm:8000/v1"], JUDGE_ENDPOINTS={})
@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://vllm:8000/v1", True),
        ("http://vllm:8000/v1/", True),
        ("http://vllm:8000/v1/chat", True),
        ("http://vllm:8000/v1.evil.org", False),
        ("http://vllm:8000/v10", False),
        ("http://vllm:8000", False),
        ("http://vllm:80001/v1", False),
        ("https://vllm:8000/v1", False),
    ],
)
def test_a_typed_base_url_must_start_with_an_allowed_prefix_at_a_path_boundary(
    url, allowed
) -> None:
    problems = outbound.judge_settings_errors({"backend": "openai", "base_url": url})
    assert (problems == []) is allowed, problems


@override_settings(JUDGE_ENDPOINTS={"lab": {"base_url": "http://lab/v1", "api_key": "sk"}})
def test_the_worker_resolves_an_endpoint_and_drops_stored_keys() -> None:
    resolved = outbound.judge_connection({"backend": "openai", "model": "m", "endpoint": "lab"})
    assert resolved == {
        "backend": "openai",
        "model": "m",
        "base_url": "http://lab/v1",
        "api_key": "sk",
    }
    with pytest.raises(outbound.OutboundRefused):
        outbound.judge_connection({"backend": "openai", "model": "m", "endpoint": "gone"})
    with pytest.raises(outbound.OutboundRefused):
        outbound.judge_connection({"backend": "openai", "model": "m", "api_key": "sk-typed"})
    local = outbound.judge_connection({"backend": "local", "model": "/m", "api_key": "x"})
    assert local == {"backend": "local", "model": "/m"}


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://hooks.example.org/ci", True),
        ("http://93.184.216.34/hook", True),
        ("http://127.0.0.1/", False),
        ("http://0.0.0.0/", False),
        ("http://100.64.0.1/", False),
        ("http://[fe80::1]/", False),
        ("http://[fd00::1]/", False),
        ("http://224.0.0.1/", False),
        ("http://localhost./", False),
        ("http://hooks.example.org:99999/", False),
        ("javascript:alert(1)", False),
    ],
)
def test_webhook_urls_are_checked_before_dns(url, ok) -> None:
    assert (outbound.webhook_url_errors(url) == []) is ok


@override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"])
def test_an_allow_listed_host_may_be_private() -> None:
    assert outbound.webhook_url_errors("http://127.0.0.1:8123/hook") == []
    assert outbound.webhook_target_address("http://127.0.0.1:8123/hook") == "127.0.0.1"


def test_a_pinned_request_keeps_the_name_for_host_and_tls() -> None:
    url, headers, extensions = outbound.pinned_request_parts(
        "https://hooks.example.org:8443/ci?x=1", "93.184.216.34"
    )
    assert url == "https://93.184.216.34:8443/ci?x=1"
    assert headers == {"Host": "hooks.example.org:8443"}
    assert extensions == {"sni_hostname": "hooks.example.org"}
    url, _, extensions = outbound.pinned_request_parts("http://h.example/x", "2606:2800::1")
    assert url == "http://[2606:2800::1]/x" and extensions == {}


def test_the_hardening_settings_are_in_effect() -> None:
    """A misspelt setting name fails silently otherwise: read what the code reads."""
    from django.conf import settings

    from annotations.throttles import LOGIN_THROTTLES

    assert isinstance(settings.JUDGE_ENDPOINTS, dict)
    assert isinstance(settings.JUDGE_ALLOWED_BASE_URLS, list)
    assert isinstance(settings.WEBHOOK_ALLOWED_HOSTS, list)
    assert {t.scope for t in LOGIN_THROTTLES} <= set(settings.LOGIN_THROTTLE_RATES)
    assert all(settings.LOGIN_THROTTLE_RATES[t.scope] for t in LOGIN_THROTTLES)
    assert settings.TOKEN_TTL_HOURS > 0
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE > 0 and settings.IMPORT_MAX_UPLOAD_BYTES > 0
    assert "evalplatform.middleware.RequestGuardMiddleware" in settings.MIDDLEWARE
    assert settings.REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"][0] == (
        "evalplatform.parsers.SafeJSONParser"
    )
    assert len(settings.AUTH_PASSWORD_VALIDATORS) >= 4
