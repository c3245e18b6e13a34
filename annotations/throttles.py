"""Brute-force protection for signing in: per client IP and per username, on the token endpoint
and the login page alike, counting failed attempts only. Counters live in the default cache
(Redis when `REDIS_URL` is set, so every web process shares them). Only the sign-in paths are
throttled: the rater loop never touches these counters.

Rates come from `LOGIN_THROTTLE_RATES` (`LOGIN_RATE_PER_IP`, `LOGIN_RATE_PER_USERNAME`), read
on each check so a test or an operator can change them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _LoginThrottle(SimpleRateThrottle):
    """Counts failed sign-ins only: a guesser is slowed down, while a room full of raters
    signing in from one address at nine o'clock is not."""

    def get_rate(self) -> str | None:
        return settings.LOGIN_THROTTLE_RATES.get(self.scope)

    def _load(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return False
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return False
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return True

    def blocked_for(self, request: Any, view: Any) -> float | None:
        """Seconds to wait when too many sign-ins failed lately, else None (records nothing)."""
        if self._load(request, view) and len(self.history) >= self.num_requests:
            return self.wait() or 1.0
        return None

    def failure_record(self, request: Any, view: Any) -> None:
        if self._load(request, view):
            self.history.insert(0, self.now)
            self.cache.set(self.key, self.history, self.duration)


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
    """None when a sign-in may be tried now, else the seconds to wait (records nothing)."""
    waits = [
        wait
        for throttle_class in LOGIN_THROTTLES
        if (wait := throttle_class().blocked_for(request, view)) is not None
    ]
    return max(waits) if waits else None


def login_failure_record(request: Any, view: Any = None) -> None:
    """Counts one failed sign-in against the address and the username."""
    for throttle_class in LOGIN_THROTTLES:
        throttle_class().failure_record(request, view)
