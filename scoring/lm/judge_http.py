"""OpenAI-compatible HTTP judge (OpenAI, vLLM, TGI, Ollama) over ``httpx``.

Each rendered prompt becomes one ``POST {base_url}/chat/completions`` with ``temperature=0``, a
small ``max_tokens`` (the template's ``max_new_tokens``) and, by default, ``logprobs=true,
top_logprobs=20``. When the endpoint returns logprobs, the verdict is located in the generated
tokens (after the template's answer prefix, e.g. ``[[``) and the candidate labels' probabilities
are read from that position's ``top_logprobs`` and renormalised (the AlpacaEval 2.0
"weighted" recipe). Without logprobs the text is parsed strictly (one verdict, else an error).

Robustness, following the usual client recipe for rate-limited APIs:

* Error messages carry the status code and a short reason, never the remote body: they end up
  on the job's status page, and a body echoed there would let anyone who can set a judge
  address read whatever answers at that address. Redirects are not followed.

* HTTP 429, 408, 5xx, timeouts and connection errors are retried with exponential backoff
  (``backoff_base * 2**attempt``, capped at ``backoff_max``, optional jitter); a
  ``Retry-After`` header sets the minimum wait. After ``max_retries`` retries, or when the
  server asks for a wait longer than ``backoff_max``,
  :class:`~scoring.lm.errors.TransientJudgeError` is raised for the task queue to retry later.
* 401/403/404 raise :class:`~scoring.lm.errors.ModelUnavailableError` (bad key, unknown model:
  skip), other 4xx :class:`~scoring.lm.errors.JudgeRequestError`.
* At most ``max_concurrency`` requests are in flight per judge object (a semaphore shared by all
  threads; a batch runs on a bounded thread pool).
* Successful answers are cached through an injectable :class:`JudgeCache` keyed by the sha256
  of (backend, model, template name and text, rendered messages, decoding parameters), so a
  re-run costs nothing. :class:`DictJudgeCache` is the in-memory default.

No Django, no torch.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import httpx

from scoring.lm.errors import (
    JudgeParseError,
    JudgeRequestError,
    ModelUnavailableError,
    TransientJudgeError,
)
from scoring.lm.judge_prompts import JudgeAnswer, JudgeTemplate, RenderedPrompt
from scoring.lm.judge_prompts import template_from_settings as _template

_RETRY_STATUS = {408, 429}
_CACHED_FIELDS = ("probs", "source", "text", "candidate_mass")
_UNAVAILABLE_STATUS = {401, 403, 404}


class JudgeCache(Protocol):
    """Storage for judge answers: JSON-serialisable dicts under sha256 hex keys."""

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the stored value or None."""
        ...

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key`` (overwrite allowed)."""
        ...


class DictJudgeCache:
    """Thread-safe in-memory :class:`JudgeCache` (per process; lost on restart)."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the stored value or None."""
        with self._lock:
            value = self._data.get(key)
        return dict(value) if value is not None else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store a copy of ``value``."""
        with self._lock:
            self._data[key] = dict(value)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


class OpenAIJudge:
    """Judge through an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: model name as the server knows it.
        base_url: API root including ``/v1`` (``http://vllm:8000/v1``).
        api_key: sent as ``Authorization: Bearer``; None sends no header (local servers).
        template: built-in name, :class:`JudgeTemplate` or custom-text mapping.
        cache: answer cache (default: a new :class:`DictJudgeCache`).
        use_logprobs: request logprobs; False for endpoints that reject the parameter.
        top_logprobs: alternatives per token (OpenAI allows up to 20).
        max_tokens: generation budget; default the template's ``max_new_tokens``.
        temperature: sampling temperature (0: greedy, reproducible where the server allows).
        timeout: per-request timeout in seconds.
        max_retries: retries after the first attempt for transient failures.
        backoff_base, backoff_max: exponential backoff parameters, in seconds.
        jitter: random extra wait as a fraction of the backoff (de-synchronises workers).
        max_concurrency: requests in flight at once for this judge object.
        extra_body: extra JSON fields merged into every request (server-specific options).
        transport: an ``httpx`` transport (tests); sleep: the sleep function (tests).
    """

    backend = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        template: str | Mapping[str, Any] | JudgeTemplate = "mtbench_pairwise",
        cache: JudgeCache | None = None,
        use_logprobs: bool = True,
        top_logprobs: int = 20,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        jitter: float = 0.1,
        max_concurrency: int = 4,
        extra_body: Mapping[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not model:
            raise ModelUnavailableError("no judge model configured")
        if not base_url:
            raise ModelUnavailableError("no judge base_url configured")
        if max_concurrency < 1 or max_retries < 0:
            raise ValueError("max_concurrency must be >= 1 and max_retries >= 0")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.template = _template(template)
        self.cache: JudgeCache = cache if cache is not None else DictJudgeCache()
        self.use_logprobs = use_logprobs
        self.top_logprobs = top_logprobs
        self.max_tokens = max_tokens or self.template.max_new_tokens
        self.temperature = temperature
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.max_concurrency = max_concurrency
        self.extra_body = dict(extra_body or {})
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max_concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers=headers,
            transport=transport,
            follow_redirects=False,
        )

    # -- public -----------------------------------------------------------------------------

    @property
    def judge_id(self) -> str:
        """Stable identifier stored with results, e.g. ``openai:http://vllm:8000/v1:qwen``."""
        return f"openai:{self.base_url}:{self.model}"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> OpenAIJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def payload(self, prompt: RenderedPrompt) -> dict[str, Any]:
        """The JSON body sent for ``prompt``."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": prompt.messages(),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.use_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = self.top_logprobs
        body.update(self.extra_body)
        return body

    def cache_key(self, prompt: RenderedPrompt) -> str:
        """sha256 hex of everything that determines the answer (see module docstring).

        The base URL is deliberately not part of the key: the same model behind another
        address (a moved server, a replica) reuses the cache.
        """
        material = {
            "backend": "openai-chat-completions",
            "model": self.model,
            "template": self.template.name,
            "template_sha256": self.template.fingerprint(),
            "payload": {k: v for k, v in self.payload(prompt).items() if k != "model"},
        }
        blob = json.dumps(material, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    def judge(self, prompts: Sequence[RenderedPrompt]) -> list[JudgeAnswer]:
        """Judge rendered prompts concurrently; one :class:`JudgeAnswer` per prompt, in order.

        Parse failures come back as answers with ``error`` set (not cached).

        Raises:
            TransientJudgeError: a request still failed after the retries.
            ModelUnavailableError: 401/403/404 from the endpoint.
            JudgeRequestError: another 4xx.
        """
        if not prompts:
            return []
        if len(prompts) == 1:
            return [self.judge_one(prompts[0])]
        workers = min(self.max_concurrency, len(prompts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge-http") as pool:
            return list(pool.map(self.judge_one, prompts))

    def judge_one(self, prompt: RenderedPrompt) -> JudgeAnswer:
        """Judge one prompt (cache first). Raises as :meth:`judge`."""
        key = self.cache_key(prompt)
        cached = self.cache.get(key)
        if cached is not None:
            # Only the known fields: a database-backed cache may add its own (timestamps...).
            return JudgeAnswer(**{k: cached.get(k) for k in _CACHED_FIELDS if k in cached})
        data = self._post(self.payload(prompt))
        answer = self._read(data)
        if answer.error is None:
            self.cache.set(key, {k: getattr(answer, k) for k in _CACHED_FIELDS})
        return answer

    # -- HTTP ------------------------------------------------------------------------------

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        reason = ""
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            try:
                with self._slots:
                    resp = self._client.post("/chat/completions", json=body)
            except httpx.TimeoutException as exc:
                reason = f"timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                reason = f"connection error ({type(exc).__name__})"
            else:
                status = resp.status_code
                if status < 400:
                    try:
                        return resp.json()
                    except ValueError:
                        # A 200 with a non-JSON body is a proxy error page: treat as transient.
                        reason = f"non-JSON body with status {status}"
                elif status in _RETRY_STATUS or status >= 500:
                    reason = f"HTTP {status}"
                    retry_after = _retry_after_seconds(resp.headers.get("Retry-After"))
                elif status in _UNAVAILABLE_STATUS:
                    raise ModelUnavailableError(
                        f"judge endpoint answered HTTP {status} for model {self.model!r} "
                        "(bad key or unknown model)"
                    )
                else:
                    raise JudgeRequestError(f"judge endpoint rejected the request: HTTP {status}")
            if attempt == self.max_retries:
                break
            if retry_after is not None and retry_after > self.backoff_max:
                raise TransientJudgeError(
                    f"{reason}; server asked to retry after {retry_after:.0f}s",
                    retry_after=retry_after,
                )
            delay = min(self.backoff_max, self.backoff_base * 2**attempt)
            delay *= (1.0 + random.uniform(0.0, self.jitter)) if self.jitter else 1.0
            if retry_after is not None:
                delay = max(delay, retry_after)
            self._sleep(delay)
        raise TransientJudgeError(
            f"judge request failed after {self.max_retries + 1} attempts: {reason}"
        )

    # -- reading answers -------------------------------------------------------------------

    def _read(self, data: Any) -> JudgeAnswer:
        """Turn a chat completion body into a :class:`JudgeAnswer`."""
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            return JudgeAnswer(
                None, "text", error="malformed chat completion (no choices[0].message)"
            )
        tokens = ((choice.get("logprobs") or {}).get("content")) or []
        if not (self.use_logprobs and tokens):
            return JudgeAnswer.from_text(self.template, text)
        try:
            return self._from_logprobs(tokens, text)
        except JudgeParseError as exc:
            return JudgeAnswer(None, "logprobs", text=text, error=str(exc))

    def _from_logprobs(self, tokens: list[dict[str, Any]], text: str) -> JudgeAnswer:
        """Read label probabilities at the verdict token from its ``top_logprobs``."""
        joined = "".join(str(t.get("token", "")) for t in tokens)
        label, offset = self.template.locate(joined)
        start = 0
        for tok in tokens:
            piece = str(tok.get("token", ""))
            if start + len(piece) > offset:
                break
            start += len(piece)
        else:  # pragma: no cover - locate() guarantees the offset lies inside the text
            raise JudgeParseError("verdict offset outside the generated tokens")
        head = joined[start:offset]
        alternatives = [{"token": tok.get("token", ""), "logprob": tok.get("logprob")}]
        alternatives += list(tok.get("top_logprobs") or [])
        mass: dict[str, float] = {}
        seen: set[str] = set()
        for alt in alternatives:
            token_text = str(alt.get("token", ""))
            logprob = alt.get("logprob")
            if token_text in seen or not isinstance(logprob, int | float):
                continue
            seen.add(token_text)
            cand = self.template.label_of_token(token_text, head)
            if cand is not None:
                mass[cand] = mass.get(cand, 0.0) + math.exp(logprob)
        total = math.fsum(mass.values())
        if total <= 0:
            # The chosen token spelled the verdict but carries no usable logprob: fall back to
            # the strictly parsed verdict.
            return JudgeAnswer.from_text(self.template, text or joined)
        return JudgeAnswer(
            probs=self.template.normalise(mass),
            source="logprobs",
            text=text or joined,
            candidate_mass=total,
        )


def _retry_after_seconds(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header (delta-seconds or HTTP-date) into seconds, or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
