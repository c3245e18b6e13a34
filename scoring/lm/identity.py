"""Identity-leak check for blind A/B evaluation (pure Python).

A blind comparison is only blind if the outputs do not say who wrote them. This module flags
outputs that name their own model or maker: self-descriptions ("As an AI developed by OpenAI",
"I am Llama", "I'm Claude, made by Anthropic", "trained by Meta/Google/Anthropic/Mistral") and
any mention of the study's own model names (given as hub ids like ``acme/support-bot-7b``: the
full id and the part after the last ``/`` are both searched, with ``-``, ``_``, ``/`` and spaces
treated as interchangeable separators).

Matching is case-insensitive and word-boundary aware: ``metadata`` does not match ``Meta``,
``Llamas`` does not match ``Llama``. A bare mention of a model family in third person ("Llama
is an open model") is *not* flagged unless it is one of the study's model names; only
self-referential phrases are. The maker phrases ("trained by Meta") are flagged wherever they
occur, so an answer *about* Llama that says "it was trained by Meta" is flagged too: for a
blind study a false alarm costs a glance, a missed leak costs the blinding.

Heuristic by design: it reports spans and reasons for a human or a filter to act on, it does
not rewrite text. No Django, no torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_MAKERS = [
    "OpenAI",
    "Anthropic",
    "Meta AI",
    "Meta",
    "Facebook",
    "Google DeepMind",
    "Google",
    "DeepMind",
    "Mistral AI",
    "Mistral",
    "Alibaba Cloud",
    "Alibaba",
    "Qwen team",
    "Microsoft",
    "Cohere",
    "DeepSeek",
    "xAI",
    "01.AI",
    "Technology Innovation Institute",
    "TII",
    "Allen Institute for AI",
    "AI2",
    "IBM",
    "NVIDIA",
    "Hugging Face",
    "HuggingFace",
    "Stability AI",
    "LMSYS",
    "Zhipu AI",
    "Baidu",
    "Tencent",
    "Amazon",
    "Apple",
]
_FAMILIES = [
    "ChatGPT",
    "GPT-4o",
    "GPT-4",
    "GPT-3.5",
    "GPT-3",
    "GPT",
    "Claude",
    "Llama",
    "LLaMA",
    "Gemini",
    "Bard",
    "Gemma",
    "PaLM",
    "Mistral",
    "Mixtral",
    "Qwen",
    "Tongyi Qianwen",
    "DeepSeek",
    "Phi",
    "Falcon",
    "Vicuna",
    "Alpaca",
    "Zephyr",
    "Command R",
    "Grok",
    "Yi",
    "OLMo",
    "Granite",
    "Nemotron",
    "ERNIE",
    "GLM",
    "ChatGLM",
    "Copilot",
]

# Letters/digits on either side mean we are inside a longer word ("metadata", "Llamas").
_L = r"(?<![A-Za-z0-9])"
_R = r"(?![A-Za-z0-9])"


def _alternation(names: Iterable[str]) -> str:
    # Longest first so "Meta AI" wins over "Meta"; separators inside names are flexible.
    parts = sorted(set(names), key=len, reverse=True)
    return "|".join(_flexible(n) for n in parts)


def _flexible(name: str) -> str:
    """Regex for ``name`` where ``-``, ``_``, ``/`` and whitespace are interchangeable."""
    tokens = [t for t in re.split(r"[\s_\-/]+", name.strip()) if t]
    return r"[\s_\-/]*".join(re.escape(t) for t in tokens)


_MAKER_RE = _alternation(_MAKERS)
_FAMILY_RE = _alternation(_FAMILIES)
_AI_NOUN = (
    r"(?:AI|artificial intelligence|(?:large\s+)?language\s+model|LLM|model|assistant|chatbot)"
)
_SELF = r"(?:I\s+am|I'm|I’m|I\s+was|my\s+name\s+is|this\s+is|call\s+me)"
_BUILT = (
    r"(?:developed|created|made|built|trained|designed|fine[\s-]?tuned|released|owned|"
    r"provided|programmed|produced|engineered)"
)

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "names its maker",
        re.compile(rf"{_L}{_BUILT}\s+(?:and\s+\w+\s+)?by\s+(?:the\s+)?(?:{_MAKER_RE}){_R}", re.I),
    ),
    (
        "names its maker",
        re.compile(
            rf"{_L}{_SELF}\s+(?:an?\s+|the\s+)?(?:{_MAKER_RE})(?:'s|’s)?\s+(?:\w+\s+)?{_AI_NOUN}{_R}",
            re.I,
        ),
    ),
    (
        "names its model",
        re.compile(
            rf"{_L}{_SELF}\s+(?:an?\s+|the\s+)?(?:{_AI_NOUN}\s+)?(?:called\s+|named\s+|known\s+as\s+)?"
            rf"(?:{_FAMILY_RE}){_R}",
            re.I,
        ),
    ),
    (
        "names its model",
        re.compile(rf"{_L}as\s+(?:{_FAMILY_RE})(?:\s*,|\s+(?:an?\s+)?{_AI_NOUN}){_R}", re.I),
    ),
]


@dataclass(frozen=True)
class IdentityLeak:
    """One flagged span.

    Attributes:
        start, end: character offsets in the checked text (``text[start:end] == match``).
        match: the matched text.
        reason: ``"names its maker"``, ``"names its model"`` or ``"names a study model: <name>"``.
    """

    start: int
    end: int
    match: str
    reason: str


def model_name_variants(name: str) -> list[str]:
    """The strings searched for a study model name: the full id and the tail after ``/``.

    Names shorter than three characters are skipped (too many false positives).
    """
    variants = []
    for candidate in (name.strip(), name.strip().rsplit("/", 1)[-1]):
        if len(candidate) >= 3 and candidate not in variants:
            variants.append(candidate)
    return variants


def find_identity_leaks(text: str, model_names: Iterable[str] = ()) -> list[IdentityLeak]:
    """Return the identity-leak spans in ``text``, sorted by position, overlaps merged.

    Args:
        text: a model output shown to raters.
        model_names: the study's model names or hub ids (``org/name``); any mention is flagged.

    Returns:
        A list of :class:`IdentityLeak` (empty when nothing is found).
    """
    hits: list[IdentityLeak] = []
    for reason, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            hits.append(IdentityLeak(m.start(), m.end(), m.group(0), reason))
    for name in model_names:
        for variant in model_name_variants(name):
            pattern = re.compile(rf"{_L}{_flexible(variant)}{_R}", re.I)
            for m in pattern.finditer(text):
                hits.append(
                    IdentityLeak(m.start(), m.end(), m.group(0), f"names a study model: {name}")
                )
    hits.sort(key=lambda h: (h.start, -(h.end - h.start)))
    merged: list[IdentityLeak] = []
    for hit in hits:
        # Keep the first (longest) hit of a group of overlapping ones.
        if merged and hit.start < merged[-1].end:
            continue
        merged.append(hit)
    return merged


def has_identity_leak(text: str, model_names: Iterable[str] = ()) -> bool:
    """True when :func:`find_identity_leaks` finds anything."""
    return bool(find_identity_leaks(text, model_names))
