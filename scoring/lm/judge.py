"""Single front for LLM-as-judge scoring of (question, base answer, tuned answer) pairs.

``build_judge(settings)`` picks a backend from a plain settings dict (what a study stores):

* ``{"backend": "local", "model": "/models/judge", "template": "mtbench_pairwise", ...}``:
  :class:`~scoring.lm.judge_local.LocalJudge` (transformers, next-token logprobs).
* ``{"backend": "openai", "model": "...", "base_url": "http://vllm:8000/v1", "api_key": ...}``:
  :class:`~scoring.lm.judge_http.OpenAIJudge` (OpenAI-compatible HTTP: OpenAI, vLLM, TGI,
  Ollama).

``judge_pairs(pairs, judge)`` renders the prompts, judges them in one batch and returns one
:class:`JudgeResult` per pair with ``p_tuned`` = probability that the tuned answer is better.

Pairwise templates are judged in both presentation orders (tuned first and base first) and
combined with :func:`~scoring.lm.judge_prompts.combine_swapped` (Zheng et al., 2023: a
verdict that flips with the order is a tie and a position-bias event). Absolute templates
(Prometheus absolute, G-Eval) grade each answer on its own and ``p_tuned`` is
``P(S_tuned > S_base) + P(S_tuned = S_base) / 2`` for the two score distributions, taken as
independent.

Importing this module loads neither torch nor Django; backends are imported when built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from scoring.lm.errors import JudgeParseError, ModelUnavailableError
from scoring.lm.judge_prompts import (
    JudgeAnswer,
    JudgeTemplate,
    RenderedPrompt,
    Rubric,
    combine_for_tuned,
    p_better,
)

_LOCAL_KEYS = {
    "device",
    "dtype",
    "mode",
    "max_tokens_per_batch",
    "max_new_tokens",
    "use_chat_template",
    "force_prefix_in_generate",
}
_OPENAI_KEYS = {
    "base_url",
    "api_key",
    "use_logprobs",
    "top_logprobs",
    "max_tokens",
    "temperature",
    "timeout",
    "max_retries",
    "backoff_base",
    "backoff_max",
    "jitter",
    "max_concurrency",
    "extra_body",
}
_COMMON_KEYS = {"backend", "model", "template"}


class Judge(Protocol):
    """What :func:`judge_pairs` needs from a backend."""

    backend: str
    template: JudgeTemplate

    @property
    def judge_id(self) -> str:
        """Identifier stored with every result."""
        ...

    def judge(self, prompts: Sequence[RenderedPrompt]) -> list[JudgeAnswer]:
        """One answer per prompt, in order."""
        ...


@dataclass(frozen=True)
class JudgePair:
    """One comparison: the question and both systems' answers (plus optional reference)."""

    question: str
    base: str
    tuned: str
    reference: str | None = None
    rubric: str | Rubric | None = None


@dataclass(frozen=True)
class JudgeResult:
    """The judge's opinion on one pair.

    Attributes:
        p_tuned: probability that the tuned answer is better (ties count half); None on error.
        verdict: ``"tuned"``, ``"base"``, ``"tie"``; None on error.
        position_bias: pairwise with swap: the two orders preferred the same position.
        order_probabilities: raw label probabilities per order, keys ``"tuned_first"`` and
            ``"base_first"`` (pairwise) or ``"tuned"`` and ``"base"`` (absolute grading).
        p_first: pairwise: P(first shown answer better) per order (same keys).
        expected_scores: absolute: expected score of each answer (keys ``"tuned"``, ``"base"``).
        template: template name; judge_id: the judge's identifier.
        error: why no verdict could be read (``on_error="record"``).
    """

    p_tuned: float | None
    verdict: Literal["base", "tuned", "tie"] | None
    position_bias: bool
    order_probabilities: dict[str, dict[str, float] | None]
    p_first: dict[str, float] | None
    expected_scores: dict[str, float] | None
    template: str
    judge_id: str
    error: str | None = None


def build_judge(settings: Mapping[str, Any], *, cache: Any = None) -> Judge:
    """Build a judge from a settings dict (see module docstring for the keys).

    Args:
        settings: ``backend`` (``"local"`` or ``"openai"``), ``model``, ``template`` (built-in
            name or ``{"base": ..., "user": ..., "system": ...}``) and backend options
            (local: device, dtype, mode, max_tokens_per_batch, max_new_tokens,
            use_chat_template, force_prefix_in_generate; openai: base_url, api_key,
            use_logprobs, top_logprobs, max_tokens, temperature, timeout, max_retries,
            backoff_base, backoff_max, jitter, max_concurrency, extra_body).
        cache: HTTP backend answer cache with ``get``/``set`` (default in-memory).

    Returns:
        A judge. A local judge loads its model on first use, so building one is cheap.

    Raises:
        ModelUnavailableError: no backend or no model configured.
        ValueError: unknown backend or unknown keys (typos should not pass silently).
        TemplateError: invalid template setting.
    """
    backend = settings.get("backend")
    model = settings.get("model")
    if not backend:
        raise ModelUnavailableError("no judge configured (settings have no 'backend')")
    if not model:
        raise ModelUnavailableError("no judge model configured (settings have no 'model')")
    allowed = _COMMON_KEYS | {"local": _LOCAL_KEYS, "openai": _OPENAI_KEYS}.get(backend, set())
    if backend not in ("local", "openai"):
        raise ValueError(f"unknown judge backend {backend!r}; use 'local' or 'openai'")
    unknown = set(settings) - allowed
    if unknown:
        raise ValueError(f"unknown judge setting(s) for backend {backend!r}: {sorted(unknown)}")
    options = {k: v for k, v in settings.items() if k not in ("backend", "model")}
    options.setdefault("template", "mtbench_pairwise")
    if backend == "local":
        from scoring.lm.judge_local import LocalJudge

        return LocalJudge(model, **options)
    from scoring.lm.judge_http import OpenAIJudge

    return OpenAIJudge(model, cache=cache, **options)


def _as_pair(item: JudgePair | Sequence[Any]) -> JudgePair:
    if isinstance(item, JudgePair):
        return item
    if len(item) not in (3, 4):
        raise ValueError("a pair is (question, base, tuned) or (question, base, tuned, reference)")
    return JudgePair(*item)


def _tuned_first_when_unswapped(pair: JudgePair) -> bool:
    """Deterministic, content-based coin flip so unswapped runs are not all base-first."""
    digest = hashlib.sha256(f"{pair.question}\0{pair.base}\0{pair.tuned}".encode()).digest()
    return digest[0] % 2 == 0


def judge_pairs(
    pairs: Sequence[JudgePair | Sequence[Any]],
    judge: Judge | Mapping[str, Any],
    *,
    swap: bool = True,
    tie_margin: float = 0.0,
    on_error: Literal["raise", "record"] = "raise",
) -> list[JudgeResult]:
    """Judge tuned-vs-base pairs; one :class:`JudgeResult` per pair, in input order.

    Args:
        pairs: :class:`JudgePair` objects or ``(question, base, tuned[, reference])`` tuples.
        judge: a built judge, or a settings dict for :func:`build_judge`.
        swap: pairwise templates only: judge both orders (default). ``False`` judges one order
            per pair, chosen by a content hash (half the cost, no position-bias detection).
        tie_margin: a single order counts as a tie when ``|p - 0.5| <= tie_margin``.
        on_error: ``"raise"`` a :class:`JudgeParseError` on the first unreadable answer, or
            ``"record"`` it in the result's ``error``.

    Raises:
        JudgeParseError: an unreadable answer with ``on_error="raise"``.
        ModelUnavailableError, TransientJudgeError, JudgeRequestError: from the backend.
    """
    built = build_judge(judge) if isinstance(judge, Mapping) else judge
    items = [_as_pair(p) for p in pairs]
    template = built.template
    if template.kind == "absolute":
        return _judge_absolute(items, built, tie_margin, on_error)

    # (pair index, tuned shown first?) for every prompt, judged in a single batch.
    plan: list[tuple[int, bool]] = []
    prompts: list[RenderedPrompt] = []
    for i, pair in enumerate(items):
        orders = (True, False) if swap else (_tuned_first_when_unswapped(pair),)
        for tuned_first in orders:
            first, second = (pair.tuned, pair.base) if tuned_first else (pair.base, pair.tuned)
            prompts.append(
                template.render(pair.question, first, second, pair.reference, pair.rubric)
            )
            plan.append((i, tuned_first))
    answers = built.judge(prompts)

    per_pair: list[dict[str, JudgeAnswer]] = [{} for _ in items]
    for (i, tuned_first), answer in zip(plan, answers, strict=True):
        per_pair[i]["tuned_first" if tuned_first else "base_first"] = answer

    results = []
    for got in per_pair:
        raw = {k: a.probs for k, a in got.items()}
        failed = [a.error for a in got.values() if a.error]
        if failed:
            if on_error == "raise":
                raise JudgeParseError(failed[0])
            results.append(
                JudgeResult(
                    None,
                    None,
                    False,
                    raw,
                    None,
                    None,
                    template.name,
                    built.judge_id,
                    error="; ".join(failed),
                )
            )
            continue
        p_first = {k: template.p_first(a.probs or {}) for k, a in got.items()}
        if swap:
            outcome = combine_for_tuned(
                p_first["tuned_first"], p_first["base_first"], tie_margin=tie_margin
            )
            p_tuned, verdict, bias = outcome.p_tuned, outcome.verdict, outcome.position_bias
        else:
            ((order, p),) = p_first.items()
            p_tuned = p if order == "tuned_first" else 1.0 - p
            verdict, bias = _verdict_from_p(p_tuned, tie_margin), False
        results.append(
            JudgeResult(p_tuned, verdict, bias, raw, p_first, None, template.name, built.judge_id)
        )
    return results


def _verdict_from_p(p_tuned: float, tie_margin: float) -> Literal["base", "tuned", "tie"]:
    if p_tuned > 0.5 + tie_margin:
        return "tuned"
    if p_tuned < 0.5 - tie_margin:
        return "base"
    return "tie"


def _judge_absolute(
    items: list[JudgePair], built: Judge, tie_margin: float, on_error: str
) -> list[JudgeResult]:
    template = built.template
    prompts = []
    for pair in items:
        for answer in (pair.tuned, pair.base):
            prompts.append(
                template.render(pair.question, answer, None, pair.reference, pair.rubric)
            )
    answers = built.judge(prompts)
    results = []
    for k in range(len(items)):
        tuned, base = answers[2 * k], answers[2 * k + 1]
        raw = {"tuned": tuned.probs, "base": base.probs}
        failed = [a.error for a in (tuned, base) if a.error]
        if failed:
            if on_error == "raise":
                raise JudgeParseError(failed[0])
            results.append(
                JudgeResult(
                    None,
                    None,
                    False,
                    raw,
                    None,
                    None,
                    template.name,
                    built.judge_id,
                    error="; ".join(failed),
                )
            )
            continue
        dist_t = template.score_distribution(tuned.probs or {})
        dist_b = template.score_distribution(base.probs or {})
        p_tuned = p_better(dist_t, dist_b)
        expected = {
            "tuned": template.expected_score(tuned.probs or {}),
            "base": template.expected_score(base.probs or {}),
        }
        results.append(
            JudgeResult(
                p_tuned,
                _verdict_from_p(p_tuned, tie_margin),
                False,
                raw,
                None,
                expected,
                template.name,
                built.judge_id,
            )
        )
    return results
