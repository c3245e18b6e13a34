"""Where the server may send requests: judge endpoints and webhooks (SSRF and key leaks).

A researcher never types the address that receives the server's judge API key: endpoints are
named in settings (`JUDGE_ENDPOINTS`, each key from its own environment variable) and a study
picks one by name (`{"judge": {"endpoint": "vllm"}}`). A `base_url` typed into settings is
accepted only when it starts with one of `JUDGE_ALLOWED_BASE_URLS`, and is then called without
any key. The same checks run where settings are accepted (study create / update, run
submission, a job's judge override) and again in the worker, just before the request, because
stored settings may predate a configuration change.

Webhooks go to public addresses only: the host is resolved and every address must be public
(not loopback, private, link-local, multicast, reserved or a cloud metadata address) unless
the host is listed in `WEBHOOK_ALLOWED_HOSTS`; redirects are never followed.

Failures are stored as a status code and a short generic message; the remote body never is
(it would turn the job status into a window onto whatever answered).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

JUDGE_SECRET_KEYS = ("api_key",)


class OutboundRefused(ValueError):
    """The server will not send this request (an address outside the configured allow-lists)."""


# --- judge --------------------------------------------------------------------------------


def _url_has_prefix(url: str, prefixes: list[str]) -> bool:
    """True when `url` starts with one of `prefixes` at a path boundary (so the prefix
    `http://vllm:8000/v1` allows `http://vllm:8000/v1/` but not `http://vllm:8000/v1.evil`,
    and `http://vllm:8000` does not allow `http://vllm:8000.evil.org`)."""
    target = url.rstrip("/")
    for prefix in prefixes:
        allowed = prefix.rstrip("/")
        if allowed and (target == allowed or target.startswith(allowed + "/")):
            return True
    return False


def judge_settings_errors(judge: Any) -> list[str]:
    """Problems with a researcher-supplied judge configuration (empty list: acceptable).

    Refused: an `api_key` (keys live in the server's environment), an `endpoint` that is not
    configured, a `base_url` outside `JUDGE_ALLOWED_BASE_URLS`, both at once."""
    if judge is None:
        return []
    if not isinstance(judge, Mapping):
        return ["must be an object"]
    problems = []
    for key in JUDGE_SECRET_KEYS:
        if key in judge:
            problems.append(
                f"'{key}' is not accepted: keys are configured on the server; "
                "name a configured endpoint with 'endpoint'"
            )
    endpoint = judge.get("endpoint")
    base_url = judge.get("base_url")
    if endpoint is not None and base_url is not None:
        problems.append("give 'endpoint' or 'base_url', not both")
    if endpoint is not None:
        known = settings.JUDGE_ENDPOINTS
        if not isinstance(endpoint, str) or endpoint not in known:
            names = ", ".join(sorted(known)) or "none"
            problems.append(f"unknown judge endpoint {endpoint!r}; configured: {names}")
    allowed = settings.JUDGE_ALLOWED_BASE_URLS
    if base_url is not None and not (
        isinstance(base_url, str) and _url_has_prefix(base_url, allowed)
    ):
        problems.append(
            "base_url is not an allowed judge address (JUDGE_ALLOWED_BASE_URLS); "
            "name a configured endpoint with 'endpoint' instead"
        )
    return problems


def study_settings_errors(study_settings: Any) -> dict[str, list[str]]:
    """Field-level problems with a study's settings object, keyed like `judge.base_url`."""
    if study_settings is None:
        return {}
    if not isinstance(study_settings, Mapping):
        return {"": ["must be a JSON object"]}
    problems = judge_settings_errors(study_settings.get("judge"))
    return {"judge": problems} if problems else {}


def judge_connection(config: Mapping[str, Any]) -> dict[str, Any]:
    """The judge settings the worker may use: `endpoint` replaced by its configured base URL
    and key; a stored `base_url` re-checked against the allow-list and never given a key.

    Raises OutboundRefused when the stored configuration is no longer acceptable."""
    resolved = {k: v for k, v in config.items() if k not in JUDGE_SECRET_KEYS}
    if config.get("backend") != "openai":
        resolved.pop("endpoint", None)
        return resolved
    problems = judge_settings_errors({k: v for k, v in config.items() if k != "api_key"})
    if problems:
        raise OutboundRefused("; ".join(problems))
    endpoint = resolved.pop("endpoint", None)
    if endpoint is not None:
        configured = settings.JUDGE_ENDPOINTS[endpoint]
        resolved["base_url"] = configured["base_url"]
        if configured.get("api_key"):
            resolved["api_key"] = configured["api_key"]
    elif not resolved.get("base_url"):
        raise OutboundRefused("the judge has neither a configured 'endpoint' nor a 'base_url'")
    return resolved


# --- webhooks -----------------------------------------------------------------------------

# Cloud metadata services answer on link-local or these well-known addresses.
_METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


def _address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


def _host_allow_listed(host: str) -> bool:
    return host.lower() in {h.lower() for h in settings.WEBHOOK_ALLOWED_HOSTS}


def webhook_url_errors(url: Any) -> list[str]:
    """Problems with a webhook URL seen without DNS (at submission): scheme, host, a literal
    non-public address. Empty list: acceptable so far (delivery resolves and checks again)."""
    if not isinstance(url, str):
        return ["must be an http(s) URL"]
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return ["must be an http(s) URL"]
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("http", "https") or not host:
        return ["must be an http(s) URL"]
    if parts.username or parts.password:
        return ["must not carry credentials"]
    if _host_allow_listed(host):
        return []
    if host.lower() in _METADATA_HOSTS or host.lower() == "localhost":
        return ["this host is not allowed (WEBHOOK_ALLOWED_HOSTS)"]
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return []
    if not _address_is_public(str(literal)):
        return ["a loopback, private, link-local or reserved address is not allowed"]
    return []


def webhook_target_address(url: str) -> str:
    """Checks a webhook URL just before delivery and returns the address to connect to: the
    syntax checks above, then every address the host resolves to must be public unless the
    host is allow-listed. The caller connects to the returned address (not the name again), so
    a second DNS answer (rebinding) cannot point the request elsewhere.

    Raises OutboundRefused."""
    problems = webhook_url_errors(url)
    if problems:
        raise OutboundRefused(problems[0])
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused("the webhook host does not resolve") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise OutboundRefused("the webhook host does not resolve")
    if not _host_allow_listed(host):
        for address in addresses:
            if not _address_is_public(address):
                raise OutboundRefused(
                    "the webhook host resolves to a loopback, private, link-local or reserved "
                    "address"
                )
    return addresses[0]


def pinned_request_parts(url: str, address: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(URL with the host replaced by `address`, headers, httpx extensions): the request goes
    to the checked address while the server still sees its own name (`Host`, and TLS SNI and
    certificate checks against the name)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    pinned = parts._replace(netloc=netloc).geturl()
    extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
    return pinned, {"Host": parts.netloc}, extensions
