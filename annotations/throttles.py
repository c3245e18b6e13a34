"""Brute-force protection for signing in: per client IP and per username, on the token endpoint
and the login page alike. Counters live in the default cache (Redis when `REDIS_URL` is set,
so every web process shares them). Only the sign-in paths are throttled: the rater loop never
touches these counters.

Rates come from `LOGIN_THROTTLE_RATES` (`LOGIN_RATE_PER_IP`, `LOGIN_RATE_PER_USERNAME`), read
on each check so a test or an operator can change them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _LoginThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        return settings.LOGIN_THROTTLE_RATES.get(self.scope)


class LoginIPThrottle(_LoginThrottle):
    """Sign-in attempts from one client address (`REMOTE_ADDR`; behind N reverse proxies set
    `NUM_PROXIES=N` so the address comes from X-Forwarded-For, which a client cannot forge)."""

    scope = "login_ip"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginUsernameThrottle(_LoginThrottle):
    """Sign-in attempts for one username, from anywhere (a distributed guess is still slow)."""

    scope = "login_username"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        data = getattr(request, "data", None)
        if data is None:
            data = request.POST
        username = data.get("username") if hasattr(data, "get") else None
        if not isinstance(username, str) or not username.strip():
            return None
        ident = hashlib.sha256(username.strip().lower().encode("utf-8", "replace")).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident[:40]}


LOGIN_THROTTLES = (LoginIPThrottle, LoginUsernameThrottle)


def login_throttle_wait(request: Any, view: Any = None) -> float | None:
    """Counts one sign-in attempt; None when allowed, else the seconds to wait."""
    waits = []
    for throttle_class in LOGIN_THROTTLES:
        throttle = throttle_class()
        if not throttle.allow_request(request, view):
            waits.append(throttle.wait() or 1.0)
    return max(waits) if waits else None
